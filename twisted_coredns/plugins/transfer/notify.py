"""NOTIFY to the secondaries: one UDP message per address, tried three times, as CoreDNS's
``transfer.Notify`` sends them.

A try is a NOTIFY and a wait for its answer (two seconds, miekg/dns's default read timeout); an
answer that is not NOERROR is tried again too. Where the block has a ``tsig`` secret the NOTIFY
is signed with it (CoreDNS sends it unsigned; a secondary that wants signed NOTIFY, knotd with a
keyed ACL, then accepts it). What was not accepted is reported as CoreDNS words
it: ``notify for zone "example.org." was not accepted by "127.0.0.1:53": rcode was "REFUSED"``.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol

from ...dns.constants import AA, NOERROR, OPCODE_NOTIFY, SOA, rcode_name
from ...dns.dnspython import parse_message
from ...dns.header import HEADER
from ...dns.query import query_wire
from ...strconv import go_quote

TRIES = 3
TIMEOUT = 2.0


def notify_wire(zone: str, qid: int, key: Any = None) -> bytes:
    """A NOTIFY for ``zone``: opcode NOTIFY, AA set, the question ``zone SOA IN`` (miekg's
    ``SetNotify``); signed with ``key`` (a ``dns.tsig.Key``) when one is given."""
    wire = query_wire(zone, SOA, qid=qid, flags=(OPCODE_NOTIFY << 11) | AA)
    if key is None:
        return wire

    message = parse_message(wire)
    message.use_tsig({key.name: key}, key.name, algorithm=key.algorithm)
    return message.to_wire()


class _Exchange(DatagramProtocol):
    noisy = False

    def __init__(self, qid: int) -> None:
        self.qid = qid
        self.answer: defer.Deferred[int] = defer.Deferred()

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if len(data) < 12 or self.answer.called:
            return
        qid, flags = HEADER.unpack_from(data)[:2]
        if qid == self.qid and flags & 0x8000:
            self.answer.callback(flags & 0xF)


async def send_notify(
    reactor: Any, zone: str, host: str, port: int, source: str | None, key: Any = None
) -> None:
    """Notify ``host:port`` that ``zone`` changed; raises ``NotifyError`` when it never said
    NOERROR."""
    rcode: int | None = None
    error: str | None = None
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for _ in range(TRIES):
        qid = random.randint(0, 0xFFFF)
        exchange = _Exchange(qid)
        interface = source or ("::" if ":" in host else "0.0.0.0")
        try:
            listening = reactor.listenUDP(0, exchange, interface=interface)
        except Exception as exc:
            error = str(exc)
            continue
        try:
            exchange.transport.write(notify_wire(zone, qid, key), (host, port))  # type: ignore[union-attr]
            timed_out: list[bool] = []

            def time_out(answer: defer.Deferred[int] = exchange.answer, flag: list[bool] = timed_out) -> None:
                flag.append(True)
                answer.cancel()

            timer = reactor.callLater(TIMEOUT, time_out)
            try:
                rcode = await exchange.answer
                error = None
            except defer.CancelledError:
                if not timed_out:
                    raise  # the server is stopping: no more tries
                error = f"read udp {target}: i/o timeout"
                continue
            except OSError as exc:
                error = str(exc)
                continue
            finally:
                if timer.active():
                    timer.cancel()
        finally:
            # A UDP port stops at once and may return None rather than a Deferred.
            await defer.maybeDeferred(listening.stopListening)
        if rcode == NOERROR:
            return
    if error is not None:
        raise NotifyError(
            f"notify for zone {go_quote(zone)} was not accepted by {go_quote(target)}: {go_quote(error)}"
        )
    raise NotifyError(
        f"notify for zone {go_quote(zone)} was not accepted by {go_quote(target)}: "
        f"rcode was {go_quote(rcode_name(rcode if rcode is not None else 2))}"
    )


class NotifyError(Exception):
    """A secondary did not accept a NOTIFY; ``str()`` is CoreDNS's text."""

