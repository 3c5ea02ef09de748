"""bind: which addresses a block listens on, interfaces expanded, exceptions removed, and the
servers really listening there and nowhere else."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Mapping
from typing import Any

import dns.rcode
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import build
from twisted_coredns.plugins import bind
from twisted_coredns.testing import InProcessServer, serve
from twisted_coredns.testing.setup import SetupResult, check_setup_rows, load_setup_rows, setup_error

from .small_plugin_support import DATA, build_block, captured_log, readme_corefiles

# What plugin/bind/setup_test.go expects for each row it accepts (it assumes Linux's lo).
_EXPECTED = {
    "bind 1.2.3.4": ["1.2.3.4"],
    "bind 1.2.3.4 ::5": ["1.2.3.4", "::5"],
    "bind ::1 1.2.3.4 ::5 127.9.9.0": ["::1", "1.2.3.4", "::5", "127.9.9.0"],
    "bind 1.2.3.4 lo": ["1.2.3.4", "127.0.0.1", "::1"],
    "bind lo {\nexcept 127.0.0.1\n}\n": ["::1"],
}


def _loopback_interface() -> bool:
    try:
        return bind.interface_addresses().get("lo") == ["127.0.0.1", "::1"]
    except OSError:
        return False


def _require_lo() -> None:
    if not _loopback_interface():
        raise unittest.SkipTest("needs an interface 'lo' holding 127.0.0.1 and ::1 (Linux)")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _hosts(body: str) -> list[str]:
    return build_block(body).blocks[0].listen_hosts


class BindSetupTests(unittest.SynchronousTestCase):
    def test_coredns_setup_rows(self) -> None:
        _require_lo()

        def listen_hosts(row: Mapping[str, Any], result: SetupResult) -> None:
            self.assertEqual(result.config.listen_hosts, _EXPECTED[row["input"]], row["input"])

        rows = load_setup_rows(DATA / "setup_cases.json", "bind")
        check_setup_rows(self, rows, check=listen_hosts, error_prefix="plugin/bind: ")

    def test_lines_add_up_and_except_belongs_to_its_line(self) -> None:
        _require_lo()
        for body, hosts in [
            ("bind 127.0.0.1\nbind ::1", ["127.0.0.1", "::1"]),
            ("bind lo {\nexcept 127.0.0.1\n}\nbind 127.0.0.1", ["::1", "127.0.0.1"]),
            ("bind 127.0.0.1 ::1 {\nexcept lo\n}", []),  # an interface name in except, too
            ("bind lo {\nexcept 127.0.0.1\nexcept ::1\n}", ["127.0.0.1"]),  # the last except counts
            ("bind lo 10.0.0.1 {\n}", ["127.0.0.1", "::1", "10.0.0.1"]),  # an empty block is fine
            ("bind ::0001", ["::0001"]),  # kept as written, as CoreDNS keeps it
        ]:
            self.assertEqual(_hosts(body), hosts, body)

    def test_error_messages(self) -> None:
        for body, message in [
            ("bind", "at least one address or interface name is expected"),
            ("bind {\nexcept 127.0.0.1\n}", "at least one address or interface name is expected"),
            ("bind 1.2.3.invalid", 'not a valid IP address or interface name: "1.2.3.invalid"'),
            ("bind ::1 noone", 'not a valid IP address or interface name: "noone"'),
            ("bind 127.0.0.1 {\nexcept nowhere\n}", 'not a valid IP address or interface name: "nowhere"'),
            # Go's ParseIP takes no zone, and no leading zeros.
            ("bind fe80::1%lo", 'not a valid IP address or interface name: "fe80::1%lo"'),
            ("bind 127.000.0.1", 'not a valid IP address or interface name: "127.000.0.1"'),
            ('bind "tab\there"', 'not a valid IP address or interface name: "tab\\there"'),
            ("bind 127.0.0.1 {\nfoo\n}", 'invalid option "foo"'),
            ("bind 127.0.0.1 {\nexcept\n}",
             "at least one address or interface must be given to except subdirective"),
            ("bind 127.0.0.1 {\nexcept ::1 {\n}\n}", 'invalid option "{"'),
        ]:
            self.assertEqual(setup_error(body), "plugin/bind: " + message, repr(body))

    def test_interface_list_failure_is_a_warning(self) -> None:
        def broken() -> dict[str, list[str]]:
            raise OSError("no interfaces here")

        self.patch(bind, "interface_addresses", broken)
        with captured_log() as out:
            self.assertEqual(_hosts("bind 127.0.0.1"), ["127.0.0.1"])
        self.assertEqual(
            out.getvalue(),
            "[WARNING] plugin/bind: failed to get interfaces list, cannot bind by interface name: "
            "no interfaces here\n",
        )
        self.assertIn('"lo"', str(setup_error("bind lo")))


class InterfaceTests(unittest.SynchronousTestCase):
    def test_link_local_addresses_get_the_interface_as_zone(self) -> None:
        for text, expected in [
            ("fe80::1", "fe80::1%eth7"),
            ("febf::1", "febf::1%eth7"),  # all of fe80::/10
            ("ff02::fb", "ff02::fb%eth7"),  # link-local multicast
            ("fd00::2", "fd00::2"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:192.0.2.1", "192.0.2.1"),  # Go prints a mapped address as IPv4
        ]:
            packed = ipaddress.IPv6Address(text).packed
            self.assertEqual(bind._ipv6_text(packed, "eth7"), expected, text)

    def test_matches_what_the_kernel_lists(self) -> None:
        if not sys.platform.startswith("linux"):
            raise unittest.SkipTest("compares with Linux's /proc/net/if_inet6")
        table = bind.interface_addresses()
        self.assertEqual(set(table), {name for _i, name in socket.if_nameindex()})
        expected: dict[str, set[str]] = {}
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                hexaddr, _idx, _plen, _scope, _flags, name = line.split()
                addr = ipaddress.IPv6Address(bytes.fromhex(hexaddr))
                zone = f"%{name}" if addr.is_link_local else ""
                expected.setdefault(name, set()).add(f"{addr}{zone}")
        for name, kernel in expected.items():
            self.assertEqual({a for a in table[name] if ":" in a}, kernel, name)
        for name, listed in table.items():
            v4 = [a for a in listed if ":" not in a]
            v6 = [a for a in listed if ":" in a]
            self.assertEqual(listed, v4 + v6, f"{name}: IPv4 first, as Go lists them")


class ZoneCheckTests(unittest.SynchronousTestCase):
    """CoreDNS's validateZonesAndListeningAddresses with bind (build() binds nothing)."""

    def test_overlaps(self) -> None:
        bound = ".:1053 {\n bind 127.0.0.1\n whoami\n}\n"
        unbound = ".:1053 {\n whoami\n}\n"
        for corefile, message in [
            (bound + unbound,
             "cannot serve dns://.:1053 - zone overlap listener capacity with dns://.:1053 on 127.0.0.1"),
            (unbound + bound,
             "cannot serve dns://.:1053 on 127.0.0.1 - zone overlap listener capacity with dns://.:1053"),
            (bound + bound, "cannot serve dns://.:1053 on 127.0.0.1 - it is already defined"),
            (".:1053 {\n bind 127.0.0.1 127.0.0.1\n}\n",
             "cannot serve dns://.:1053 on 127.0.0.1 - it is already defined"),
            # The unbound zone is reported against the bound one registered last.
            ("a:1053 {\n bind 127.0.0.1\n}\na:1053 {\n bind 127.0.0.2\n}\na:1053 {\n}\n",
             "cannot serve dns://a.:1053 - zone overlap listener capacity with dns://a.:1053 on 127.0.0.2"),
        ]:
            with self.assertRaises(CorefileError, msg=corefile) as caught:
                build(corefile)
            self.assertEqual(str(caught.exception), message, corefile)

    def test_allowed(self) -> None:
        for corefile, addresses in [
            (".:1053 {\n bind 127.0.0.1\n}\n.:1053 {\n bind ::1\n}\n", ["dns://127.0.0.1:1053", "dns://[::1]:1053"]),
            ("example.org:1053 {\n bind 127.0.0.1\n}\n.:1053 {\n}\n", ["dns://127.0.0.1:1053", "dns://:1053"]),
            (".:1053 {\n bind 127.0.0.1\n}\n.:1054 {\n}\n", ["dns://127.0.0.1:1053", "dns://:1054"]),
            # One listener per address as Go resolves it: ::1 and ::0001 are one socket.
            (".:1053 {\n bind ::1 ::0001 ::ffff:127.0.0.1\n}\n", ["dns://[::1]:1053", "dns://127.0.0.1:1053"]),
            # Everything excepted: the block listens nowhere.
            (".:1053 {\n bind 127.0.0.1 {\n except 127.0.0.1\n }\n}\n", []),
        ]:
            self.assertEqual([g.address for g in build(corefile).groups], addresses, corefile)


def _tcp_refused(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


class BindServerTests(unittest.TestCase):
    """The listeners really are where bind says, and only there."""

    def setUp(self) -> None:
        if not _ipv6_loopback():
            raise unittest.SkipTest("needs IPv6 on ::1")

    @inlineCallbacks
    def check(self, server: Any, answers: list[str], silent: list[str]) -> Any:
        port = server.port
        for host in answers:
            for tcp in (False, True):
                r = yield server.query("example.org.", host=host, port=port, tcp=tcp)
                self.assertEqual(r.additional[0][0].address, host, f"{host} tcp={tcp}")
        for host in silent:
            refused = yield deferToThread(_tcp_refused, host, port)
            self.assertTrue(refused, f"{host}:{port} must not listen over TCP")
            d = server.query("example.org.", host=host, port=port, timeout=0.5)
            yield self.assertFailure(d, dns.exception.Timeout, ConnectionRefusedError)

    @inlineCallbacks
    def test_bind_ipv4_only(self) -> Any:
        server = yield serve(self, ".:0 {\n bind 127.0.0.1\n whoami\n}\n")
        self.assertEqual(list(server.ports), ["dns://127.0.0.1:0"])
        yield self.check(server, ["127.0.0.1"], ["::1"])

    @inlineCallbacks
    def test_bind_interface_except_ipv4(self) -> Any:
        _require_lo()
        server = yield serve(self, ".:0 {\n bind lo {\n  except 127.0.0.1\n }\n whoami\n}\n")
        self.assertEqual(list(server.ports), ["dns://[::1]:0"])
        yield self.check(server, ["::1"], ["127.0.0.1"])

    @inlineCallbacks
    def test_everything_excepted_starts_no_listener(self) -> Any:
        # CoreDNS's test/bind_test.go TestBind_FilterAll: nothing to listen on, nothing breaks.
        server = yield serve(self, ".:0 {\n bind 127.0.0.1 {\n  except 127.0.0.1\n }\n whoami\n}\n")
        self.assertEqual(server.service.servers, [])

    @inlineCallbacks
    def test_link_local_address_with_zone(self) -> Any:
        # A link-local address only binds with its zone; nothing is sent to it.
        link_local = [
            (name, addr) for name, addrs in bind.interface_addresses().items() for addr in addrs
            if addr.startswith("fe80:")
        ]
        if not link_local:
            raise unittest.SkipTest("no interface with an IPv6 link-local address")
        name, addr = link_local[0]
        self.assertTrue(addr.endswith(f"%{name}"), addr)
        self.patch(bind, "interface_addresses", lambda: {"ll": [addr]})
        server = yield serve(self, ".:0 {\n bind ll\n whoami\n}\n")
        self.assertEqual(list(server.ports), [f"dns://[{addr}]:0"])
        self.assertNotEqual(server.port, 0)


class BindReadmeTests(unittest.TestCase):
    @inlineCallbacks
    def test_readme_corefiles_start_and_answer(self) -> Any:
        # The examples bind loopback addresses and lo only, so they run as written.
        if not _ipv6_loopback():
            raise unittest.SkipTest("needs IPv6 on ::1")
        _require_lo()
        listening = {
            "bind_1.corefile": ["127.0.0.1"],
            "bind_2.corefile": ["127.0.0.1", "::1"],
            "bind_3.corefile": ["127.0.0.1", "::1"],
            "bind_4.corefile": ["127.0.0.1", "::1"],
            "bind_5.corefile": ["::1"],
        }
        for path in readme_corefiles("bind"):
            server = InProcessServer(path.read_text(encoding="utf-8"))
            yield server.start()
            try:
                hosts = [s.group.host for s in server.service.servers]
                self.assertEqual(hosts, listening[path.name], path.name)
                for s in server.service.servers:
                    r = yield server.query("example.org.", host=s.group.host, port=s.port)
                    # bind adds no handler: the block has none and refuses, as in CoreDNS.
                    self.assertEqual(r.rcode(), dns.rcode.REFUSED, f"{path.name} {s.group.host}")
            finally:
                yield server.stop()
