"""Names as text: the one subdomain test, normalization and zone matching, escapes understood."""

from __future__ import annotations

import dns.exception
import dns.name
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.dns import Zones, is_subdomain, normalize, parent_of, read_name, read_qname
from twisted_coredns.dns.names import ancestry


class SubdomainTests(SynchronousTestCase):
    def test_table(self) -> None:
        for child, parent, want in [
            ("example.org.", "example.org.", True),
            ("www.example.org.", "example.org.", True),
            ("a.b.example.org.", "example.org.", True),
            ("anything.", ".", True),
            (".", ".", True),
            ("example.org.", "www.example.org.", False),
            ("notexample.org.", "example.org.", False),
            ("org.", "example.org.", False),
            # an escaped dot is inside a label: a\.b.example.org. has labels a.b, example, org
            ("a\\.b.example.org.", "b.example.org.", False),
            ("a\\.b.example.org.", "example.org.", True),
            # an escaped backslash before the dot leaves the dot a boundary
            ("a\\\\.b.example.org.", "b.example.org.", True),
            ("x\\\\\\.b.example.org.", "b.example.org.", False),
        ]:
            self.assertEqual(is_subdomain(child, parent), want, (child, parent))

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=4),
        st.lists(st.binary(min_size=1, max_size=6), min_size=0, max_size=3),
    )
    def test_agrees_with_dnspython(self, head: list[bytes], tail: list[bytes]) -> None:
        child = dns.name.Name([*head, *tail, b""])
        parent = dns.name.Name([*tail, b""])
        other = dns.name.Name([*head[-1:], *tail, b""])
        for a, b in ((child, parent), (parent, child), (child, other), (other, child)):
            text_a, text_b = a.to_text().lower(), b.to_text().lower()
            self.assertEqual(is_subdomain(text_a, text_b), a.is_subdomain(b), (text_a, text_b))


class NormalizeTests(SynchronousTestCase):
    def test_table(self) -> None:
        for text, want in [
            ("Example.ORG", "example.org."),
            ("example.org.", "example.org."),
            (".", "."),
            ("", "."),
            ("A\\046B.example", "a\\.b.example."),
            ("*.Example.org", "*.example.org."),
        ]:
            self.assertEqual(normalize(text), want, text)

    @settings(max_examples=300, deadline=None)
    @given(st.from_regex(r"[A-Za-z0-9_*/.\\-]{1,70}", fullmatch=True))
    def test_shortcut_agrees_with_dnspython(self, text: str) -> None:
        # Plain names take a shortcut; it must give what the dnspython round trip gives.
        try:
            want: str | None = dns.name.from_text(text).to_text().lower()
        except dns.exception.DNSException:
            want = None
        try:
            got: str | None = normalize(text)
        except ValueError:
            got = None
        self.assertEqual(got, want, text)

    def test_bad_names(self) -> None:
        for text in ("a..b", "example..", "x" * 64 + ".org"):
            with self.assertRaises(ValueError, msg=text):
                normalize(text)


class ParentTests(SynchronousTestCase):
    def test_walk(self) -> None:
        walk = ["a\\.b.example.org.", "example.org.", "org.", "."]
        self.assertEqual(list(ancestry("a\\.b.example.org.")), walk)
        self.assertEqual(parent_of("org."), ".")
        self.assertEqual(parent_of("."), ".")
        self.assertEqual(parent_of("a\\\\.b."), "b.")


class ZonesTests(SynchronousTestCase):
    def test_longest_match(self) -> None:
        zones = Zones(["example.org", "b.example.org.", "Org."])
        self.assertEqual(zones.matches("x.b.example.org."), "b.example.org.")
        self.assertEqual(zones.matches("b.example.org."), "b.example.org.")
        self.assertEqual(zones.matches("x.example.org."), "example.org.")
        self.assertEqual(zones.matches("a\\.b.example.org."), "example.org.")
        self.assertEqual(zones.matches("net."), None)
        self.assertEqual(zones.matches("org."), "org.")
        self.assertTrue(zones.covers("deep.a.example.org."))
        self.assertFalse(zones.covers("example.net."))
        self.assertIn("x.b.example.org.", zones)

    def test_root_holds_everything(self) -> None:
        zones = Zones([".", "example.org."])
        self.assertEqual(zones.matches("www.example.org."), "example.org.")
        self.assertEqual(zones.matches("example.net."), ".")
        self.assertTrue(zones.covers("anything."))

    def test_empty(self) -> None:
        zones = Zones([])
        self.assertFalse(zones)
        self.assertIsNone(zones.matches("example.org."))
        self.assertFalse(zones.covers("example.org."))

    def test_escaped_dot_is_not_below(self) -> None:
        zones = Zones(["b.example.org."])
        self.assertFalse(zones.covers("a\\.b.example.org."))
        self.assertIsNone(zones.matches("a\\.b.example.org."))
        self.assertTrue(zones.covers("a\\\\.b.example.org."))

    def test_same_zones_once(self) -> None:
        self.assertEqual(list(Zones(["Example.org", "example.org."])), ["example.org."])


class WireNameTests(SynchronousTestCase):
    def test_shortcut_keeps_a_dot_inside_a_label(self) -> None:
        head = b"\x00" * 12
        self.assertEqual(read_qname(head + b"\x03a.b\x07example\x03org\x00", 12)[0], "a\\.b.example.org.")
        self.assertEqual(read_qname(head + b"\x01a\x01b\x07example\x03org\x00", 12)[0], "a.b.example.org.")
        self.assertEqual(read_qname(head + b"\x00", 12), (".", 13))

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=8), min_size=0, max_size=5))
    def test_question_name_agrees_with_dnspython(self, labels: list[bytes]) -> None:
        name = dns.name.Name([*labels, b""])
        wire = b"\x00" * 12 + name.to_wire()
        text, end = read_qname(wire, 12)
        self.assertEqual(text, name.to_text())
        self.assertEqual(end, len(wire))

    def test_compressed_name(self) -> None:
        # "example.org." at 12, then "www" + pointer to it
        wire = b"\x00" * 12 + b"\x07example\x03org\x00" + b"\x03www\xc0\x0c"
        self.assertEqual(read_name(wire, 25), ("www.example.org.", 31))
        self.assertEqual(read_name(wire, 12), ("example.org.", 25))

    def test_compression_loop_is_an_error(self) -> None:
        from twisted_coredns.dns import WireError

        with self.assertRaises(WireError):
            read_name(b"\x00" * 12 + b"\xc0\x0c", 12)
