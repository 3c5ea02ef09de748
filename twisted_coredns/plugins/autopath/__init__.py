"""autopath: the client's search path walked on the server (CoreDNS's plugin/autopath).

- ``setup``: ``autopath [ZONE...] RESOLV-CONF``, where RESOLV-CONF is a resolv.conf-style file or
  ``@PLUGIN``, a plugin of the block that gives the search path per query;
- ``handler``: the walk, and the CNAME that makes the found answer fit the question;
- ``metrics``: ``coredns_autopath_success_total``.
"""
