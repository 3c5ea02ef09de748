"""greet: its setup, read from Corefile text, and its answers, from a server on the test's reactor.

Run from the package with greet installed (``pip install -e .``, then ``pytest tests``); in the
twisted-coredns checkout, ``make test`` puts ``src`` on PYTHONPATH instead.
"""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import pytest_twisted
from coredns_greet import DEFAULT_TEXT, Greet

from twisted_coredns.testing import run_cli, run_setup, setup_error
from twisted_coredns.testing.fixtures import CoreDNSServer

EXAMPLE = """\
example.org {
    greet {
        text "Hi {remote}, you asked for {name}"
        ttl 30
    }
    whoami
}
"""


def _txt(reply: dns.message.Message) -> tuple[str, int, tuple[bytes, ...]]:
    (rrset,) = reply.answer
    assert rrset.rdtype == dns.rdatatype.TXT
    return rrset.name.to_text(), rrset.ttl, rrset[0].strings


def _answered_by_whoami(reply: dns.message.Message) -> bool:
    types = sorted(dns.rdatatype.to_text(rrset.rdtype) for rrset in reply.additional)
    return reply.rcode() == dns.rcode.NOERROR and reply.answer == [] and types == ["A", "SRV"]


# Setup: what the block says, and CoreDNS's errors for what it must not say.


def test_setup_defaults() -> None:
    greet = run_setup("greet").handler
    assert isinstance(greet, Greet)
    assert (list(greet.zones), greet.text, greet.ttl) == (["."], DEFAULT_TEXT, 60)


def test_setup_reads_the_block() -> None:
    greet = run_setup("greet example.org example.net {\n    text hi\n    ttl 5\n}").handler
    assert isinstance(greet, Greet)
    assert (list(greet.zones), greet.text, greet.ttl) == (["example.org.", "example.net."], "hi", 5)


def test_zones_default_to_the_server_block() -> None:
    greet = run_setup("greet", keys="example.org").handler
    assert isinstance(greet, Greet)
    assert list(greet.zones) == ["example.org."]


PARSING = "plugin/greet: Corefile:3 - Error during parsing: "


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("greet {\n    text\n}", PARSING + "Wrong argument count or unexpected line ending after 'text'"),
        ("greet {\n    text a b\n}", PARSING + "Wrong argument count or unexpected line ending after 'b'"),
        ("greet {\n    ttl x\n}", PARSING + 'strconv.ParseUint: parsing "x": invalid syntax'),
        ("greet {\n    ttl -1\n}", PARSING + 'strconv.ParseUint: parsing "-1": invalid syntax'),
        ("greet {\n    colour blue\n}", PARSING + "unknown property 'colour'"),
        ("greet\ngreet", "plugin/greet: this plugin can only be used once per Server Block"),
    ],
    ids=["text-without-argument", "text-two-arguments", "ttl-not-a-number", "ttl-negative",
         "unknown-property", "twice"],
)
def test_setup_errors(text: str, error: str) -> None:
    assert setup_error(text) == error


def test_the_command_prints_the_same_error(tmp_path: Path) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(". {\n    greet {\n        ttl x\n    }\n}\n")
    done = run_cli(["-conf", str(corefile)])
    assert done.returncode == 1
    # The words setup_error gives, with the file's path where it says "Corefile".
    expected = setup_error("greet {\n    ttl x\n}")
    assert expected == PARSING + 'strconv.ParseUint: parsing "x": invalid syntax'
    assert expected.replace("Corefile:3", f"{corefile}:3") in done.stderr.splitlines()


# Serving: a real server in this process, asked over UDP and TCP.


@pytest.mark.corefile(EXAMPLE)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_answers_txt_with_text_and_ttl(coredns_server: CoreDNSServer, tcp: bool) -> None:
    reply = await coredns_server.query("www.example.org.", "TXT", tcp=tcp)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert _txt(reply) == ("www.example.org.", 30, (b"Hi 127.0.0.1, you asked for www.example.org.",))


@pytest.mark.corefile(". {\n    greet\n}\n")
@pytest_twisted.ensureDeferred
async def test_default_greeting(coredns_server: CoreDNSServer) -> None:
    reply = await coredns_server.query("anything.test.", "TXT")
    assert _txt(reply) == ("anything.test.", 60, (b"Hello, 127.0.0.1!",))


@pytest.mark.corefile(EXAMPLE)
@pytest_twisted.ensureDeferred
async def test_other_types_go_to_the_next_plugin(coredns_server: CoreDNSServer) -> None:
    assert _answered_by_whoami(await coredns_server.query("www.example.org.", "A"))
    assert _answered_by_whoami(await coredns_server.query("www.example.org.", "AAAA", tcp=True))


@pytest.mark.corefile(". {\n    greet example.org\n    whoami\n}\n")
@pytest_twisted.ensureDeferred
async def test_names_outside_its_zones_go_to_the_next_plugin(coredns_server: CoreDNSServer) -> None:
    assert _answered_by_whoami(await coredns_server.query("www.example.net.", "TXT"))
    inside = await coredns_server.query("www.example.org.", "TXT")
    assert _txt(inside)[2] == (b"Hello, 127.0.0.1!",)


@pytest.mark.corefile(". {\n    whoami\n    greet\n}\n")
@pytest_twisted.ensureDeferred
async def test_runs_before_whoami_wherever_it_is_written(coredns_server: CoreDNSServer) -> None:
    # plugin.cfg order, not Corefile order: greet is registered before="whoami".
    order = [handler.name for handler in coredns_server.instance.blocks[0].handlers]
    assert order == ["greet", "whoami"]
    assert _txt(await coredns_server.query("www.example.org.", "TXT"))[2] == (b"Hello, 127.0.0.1!",)


@pytest.mark.corefile(". {\n    greet\n}\n")
@pytest_twisted.ensureDeferred
async def test_alone_other_types_find_no_next_plugin(coredns_server: CoreDNSServer) -> None:
    # CoreDNS's "no next plugin found": SERVFAIL.
    reply = await coredns_server.query("www.example.org.", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL
