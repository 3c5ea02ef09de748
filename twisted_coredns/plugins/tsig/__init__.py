"""tsig: TSIG keys, checked on the queries that carry them and used to sign the replies
(CoreDNS's plugin/tsig).

The pieces, in the order a query meets them: ``setup`` reads the keys (``keys`` reads a
``named.conf`` key file), ``handler`` checks a signed query and strips its TSIG record before the
rest of the chain sees it, and ``session`` signs the reply (or, for a zone transfer, each of its
messages: ``transfer`` finds the session in the request's metadata).
"""
