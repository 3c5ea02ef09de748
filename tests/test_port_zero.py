"""Port 0 for a listener means a port nobody holds.

With SO_REUSEPORT set before the bind, Linux counts a port that another SO_REUSEPORT socket of the
same user holds as free, and binding port 0 can land there: two servers then split one port's
queries (a test's query answered REFUSED by another test's server). ``listen_pair`` finds the
port with probes that do not set SO_REUSEPORT."""

from __future__ import annotations

import socket

from twisted.trial import unittest

from twisted_coredns.server.sockets import close_pair, listen_pair, pair_port


class PortZeroTests(unittest.TestCase):
    def test_port_zero_never_joins_another_sockets_port(self) -> None:
        held = []
        try:
            for _ in range(200):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind(("127.0.0.1", 0))
            taken = {sock.getsockname()[1] for sock in held}
            # Without the probes, about 1 bind in 100 lands on one of these (measured on Linux 6.x).
            for _ in range(1000):
                pair = listen_pair("127.0.0.1", 0)
                try:
                    self.assertNotIn(pair_port(pair), taken)
                finally:
                    close_pair(pair)
        finally:
            for sock in held:
                sock.close()
