"""forward: relays queries to upstream resolvers over UDP, TCP, DNS-over-TLS or DNS-over-HTTPS.

The pieces, in the order a query meets them: ``forward`` (the handler and its retry loop),
``policy`` (the order upstreams are tried in), ``proxy`` (one upstream: its connection cache and
health), ``connection`` (the sockets, built on twisted.names' client protocols), ``health``
(in-band checks), ``doh`` (HTTPS upstreams). ``setup`` reads the Corefile; ``addresses`` reads
**TO** addresses as CoreDNS does.
"""
