"""etcd: SkyDNS service discovery from etcd v3 (CoreDNS's plugin/etcd).

The pieces, in the order a query meets them:

- ``handler``: the ``Etcd`` handler: zones, fallthrough, NXDOMAIN/NODATA/SERVFAIL, readiness;
- ``lookup``: CoreDNS's backend_lookup.go: the records of each type from the services found;
- ``service``: SkyDNS's JSON values and key paths (``msg``);
- ``client``: etcd's v3 JSON gateway over twisted.web, with endpoint failover and a deadline;
- ``setup``: the Corefile syntax and CoreDNS's error texts.
"""
