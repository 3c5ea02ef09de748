"""sign: signs zone files offline (CoreDNS's plugin/sign) for ``file`` and ``auto`` to serve.

The pieces, in the order a zone meets them: ``setup`` (the directive, and when signing runs: at
start and every 5 hours, in the reactor's thread pool), ``keys`` (the ``key`` property: BIND key
pairs that must be CSKs or KSKs), ``signer`` (whether a signed file needs signing again; reading
the zone, DNSKEY/CDS/CDNSKEY at the apex, the NSEC chain, the RRSIGs; writing
``db.ZONE.signed``).
"""
