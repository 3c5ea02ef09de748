"""proxyproto: the client's address from a PROXY protocol header (CoreDNS's plugin/proxyproto)."""
