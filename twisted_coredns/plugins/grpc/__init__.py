"""grpc: relays queries to upstreams that serve CoreDNS's ``DnsService/Query`` over gRPC.

``setup`` reads the directive; ``handler`` holds CoreDNS's loop over upstreams; ``proxy`` is one
upstream, a grpcio channel whose calls complete on the reactor; ``metrics`` names the families.
"""
