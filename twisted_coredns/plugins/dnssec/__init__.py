"""dnssec: signs replies on the fly (CoreDNS's plugin/dnssec), with NSEC "black lies" for denial.

The pieces, in the order a query meets them: ``setup`` (the directive, key files, the ZSK/KSK
split), ``handler`` (DNSKEY answered at the apex; with DO, the reply of the rest of the chain
signed, NXDOMAIN turned into NODATA with a made-up NSEC), ``cache`` (signatures kept by RRset and
signer, with CoreDNS's metrics in ``metrics``).
"""
