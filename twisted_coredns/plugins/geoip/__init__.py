"""geoip: the client's place and network, looked up in a MaxMind DB file and left as metadata for
the plugins after it (CoreDNS's plugin/geoip).

- ``setup``: ``geoip DBFILE { edns-subnet }``;
- ``database``: the ``.mmdb`` file opened with ``maxminddb``, its schema (city, ASN) told from its
  database type as geoip2-golang tells it;
- ``handler``: per query, the address (the client's, or its EDNS client subnet) and the
  ``geoip/...`` metadata.
"""
