"""tls: the certificate, key and client-authentication policy of a block's encrypted servers
(CoreDNS's plugin/tls). The servers read them from ``BlockConfig.settings["tls"]``."""
