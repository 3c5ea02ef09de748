"""The DNS servers: transports, the zone router, the listening sockets."""

from .protocols import DNSDatagramProtocol, DNSStreamFactory, DNSStreamProtocol
from .router import ZoneRouter, then
from .service import CoreDNSService, DNSServer
from .sockets import listen_pair, listen_socket

__all__ = [
    "CoreDNSService",
    "DNSDatagramProtocol",
    "DNSServer",
    "DNSStreamFactory",
    "DNSStreamProtocol",
    "ZoneRouter",
    "listen_pair",
    "listen_socket",
    "then",
]
