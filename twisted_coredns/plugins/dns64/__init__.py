"""dns64: AAAA records synthesized from A records for IPv6-only clients behind NAT64 (RFC 6147;
CoreDNS's plugin/dns64).

- ``setup``: ``dns64 [PREFIX] { prefix PREFIX; translate_all; allow_ipv4 }``;
- ``handler``: which AAAA queries to intercept, the A query asked through the block's chain, and
  the synthesized reply (RFC 6052 addresses);
- ``metrics``: ``coredns_dns64_requests_translated_total``.
"""
