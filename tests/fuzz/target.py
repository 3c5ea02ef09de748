"""The server under fuzz, and sending it batches of packets.

``FuzzTarget`` runs unbound (the upstream of ``forward``) and ``twisted-coredns`` with
``multisocket 2`` (two workers, so that a worker dying would show) on loopback, with a Corefile
that has forward, cache, log, errors, any, chaos and whoami. ``udp(packets)`` and ``tcp(packets)``
send a batch and check every reply against its packet (``checks.check_reply``); ``health()`` says
what is wrong with the server itself after a batch: a normal query not answered, a worker process
gone or replaced, a traceback or a crashed chain in the log.

Both the CI test (``tests/fuzz/test_server_fuzz.py``) and ``bench/fuzz.py`` drive it.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from twisted_coredns.testing import SubprocessServer
from twisted_coredns.testing.unbound import UnboundServer

from .checks import check_reply, expects_reply

__all__ = ["Finding", "FuzzTarget", "corefile", "normal_query"]

UPSTREAM_RECORDS = [
    "a.fwd.test. 300 IN A 127.0.0.2",
    "a.fwd.test. 300 IN AAAA ::2",
    'txt.fwd.test. 300 IN TXT "hello" "fuzz"',
    *[f'txt.fwd.test. 300 IN TXT "{"x" * 200}{i}"' for i in range(12)],  # over 512: truncated
]

READY = "twisted-coredns-"
"""The last line of the startup banner: every worker is up."""

LOG_PROBLEMS = ("Traceback", "[FATAL]", "plugin chain failed", "Unhandled", "was killed", "exited with")
"""Lines that mean the server hit a bug: a traceback (``debug`` prints them), a crashed plugin
chain, an error nobody handled, a worker that died."""

REPLY_WAIT = 8.0
"""How long a batch waits for its last reply: more than forward's 5 s, the longest a query may
legitimately take here (an upstream that never answers)."""


def corefile(upstream_port: int, workers: int = 2) -> str:
    """``fwd.test`` goes to unbound; everything else is answered by any, chaos or whoami."""
    return f"""fwd.test {{
    forward . 127.0.0.1:{upstream_port}
    cache
    log
    errors
    multisocket {workers}
}}
. {{
    any
    chaos
    whoami
    cache
    log
    errors
    debug
    multisocket {workers}
}}
"""


def normal_query(qid: int, name: bytes = b"\x06health\x07example\x00") -> bytes:
    """An A query for ``health.example.``, the health check after every batch."""
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


@dataclass
class Finding:
    """A packet the server got wrong."""

    proto: str
    packet: bytes
    reply: bytes | None
    problem: str

    log: list[str] = field(default_factory=list)
    """The server's log lines for the packet's ID: which worker answered it, and how."""

    def __str__(self) -> str:
        reply = "none" if self.reply is None else self.reply.hex()
        lines = [f"{self.proto}: {self.problem}", f"  packet {self.packet.hex()}", f"  reply  {reply}"]
        lines += [f"  log    {line}" for line in self.log]
        return "\n".join(lines)


@dataclass
class Stats:
    sent: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    silent: int = 0
    """Packets that got no reply, as they must (shorter than a header, or QR set)."""
    bad: int = 0
    restarts: int = 0
    """Worker processes that went away (and were started again) while the target ran."""


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return {int(p) for p in f.read().split()}
    except OSError:
        return set()


def _rss_kb(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total


class FuzzTarget:
    """unbound and twisted-coredns on loopback, ready for batches once ``start()`` returns."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self.upstream = UnboundServer(UPSTREAM_RECORDS, zones=["fwd.test. static"])
        self.server: SubprocessServer | None = None
        self.stats = Stats()
        self._next_id = 1
        self._log_offset = 0
        self.pids: set[int] = set()

    # -- lifetime ---------------------------------------------------------------------------------

    def start(self) -> FuzzTarget:
        self.upstream.start()
        try:
            self.server = SubprocessServer(corefile(self.upstream.port, self.workers))
            self.server.start()
            self.server.wait_for_log(READY, timeout=30)
        except BaseException:
            self.stop()
            raise
        self.pids = self.processes()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.__exit__()
            self.server = None
        self.upstream.stop()

    def __enter__(self) -> FuzzTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def processes(self) -> set[int]:
        """The master's child processes: the workers and the fork server that made them."""
        assert self.server is not None and self.server.process is not None
        return _children(self.server.process.pid)

    def rss_kb(self) -> int:
        """The resident memory of the master and its children, in kB."""
        assert self.server is not None and self.server.process is not None
        return _rss_kb({self.server.process.pid} | self.processes())

    # -- batches ----------------------------------------------------------------------------------

    def _ids(self, packets: list[bytes]) -> list[bytes]:
        """The packets with IDs unique in the batch, so each reply finds its packet (a packet too
        short for an ID keeps what it has)."""
        out = []
        for packet in packets:
            if len(packet) >= 2:
                packet = struct.pack("!H", self._next_id) + packet[2:]
                self._next_id = self._next_id % 0xFFFF + 1
            out.append(packet)
        return out

    def _judge(self, proto: str, packets: list[bytes], replies: dict[int, list[bytes]],
               health_id: int) -> list[Finding]:
        findings = []
        health = replies.pop(health_id, [])
        if len(health) != 1 or check_reply(normal_query(health_id), health[0], proto) is not None:
            findings.append(Finding(proto, normal_query(health_id), health[0] if health else None,
                                    "the normal query after the batch was not answered well"))
        for packet in packets:
            self.stats.sent[proto] += 1
            got = replies.pop(int.from_bytes(packet[:2], "big"), []) if len(packet) >= 2 else []
            if len(got) > 1:
                problem: str | None = f"{len(got)} replies"
            else:
                problem = check_reply(packet, got[0] if got else None, proto)
            if got:
                self.stats.replies += 1
            else:
                self.stats.silent += 1
            if problem is not None:
                findings.append(Finding(proto, packet, got[0] if got else None, problem))
        for qid, stray in replies.items():
            findings.extend(Finding(proto, b"", reply, f"a reply with ID {qid}, which no packet had")
                            for reply in stray)
        self.stats.bad += len(findings)
        for finding in findings:
            if len(finding.packet) >= 2:
                finding.log = self.log_lines_for(int.from_bytes(finding.packet[:2], "big"))
        return findings

    def udp(self, packets: list[bytes]) -> list[Finding]:
        """Send ``packets`` as datagrams from one new socket, then a normal query; wait for every
        reply due; check them."""
        packets = self._ids(packets)
        health_id = self._ids([b"\x00\x00"])[0]
        health_id_int = int.from_bytes(health_id, "big")
        due = {int.from_bytes(p[:2], "big") for p in packets if expects_reply(p)} | {health_id_int}
        replies: dict[int, list[bytes]] = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            sock.connect(("127.0.0.1", self.port))
            for packet in packets:
                sock.send(packet)
            sock.send(normal_query(health_id_int))
            deadline = time.monotonic() + REPLY_WAIT
            sock.setblocking(False)
            while True:
                try:
                    reply = sock.recv(65535)
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if not due or left <= 0:
                        break  # everything due is in, and the queue is drained
                    select.select([sock], [], [], left)
                    continue
                except ConnectionRefusedError:
                    break
                qid = int.from_bytes(reply[:2], "big") if len(reply) >= 2 else -1
                replies.setdefault(qid, []).append(reply)
                due.discard(qid)
        return self._judge("udp", packets, replies, health_id_int)

    def tcp(self, packets: list[bytes], tail: bytes = b"") -> list[Finding]:
        """Send ``packets`` pipelined on one new connection, then a normal query, then ``tail``
        (garbage: a length with too few octets after it, say) and half-close; every reply due
        must come, and nothing after them."""
        packets = [p[:0xFFFF] for p in self._ids(packets)]
        health_id = int.from_bytes(self._ids([b"\x00\x00"])[0], "big")
        due = {int.from_bytes(p[:2], "big") for p in packets if expects_reply(p)} | {health_id}
        replies: dict[int, list[bytes]] = {}
        stream = b"".join(struct.pack("!H", len(p)) + p for p in packets)
        stream += struct.pack("!H", len(normal_query(health_id))) + normal_query(health_id)
        findings: list[Finding] = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=REPLY_WAIT) as sock:
            sock.sendall(stream)
            buf = b""
            deadline = time.monotonic() + REPLY_WAIT
            closed = False
            while due and time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65535)
                except TimeoutError:
                    break
                if not chunk:
                    closed = True
                    break
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                    size = int.from_bytes(buf[:2], "big")
                    reply, buf = buf[2 : 2 + size], buf[2 + size :]
                    qid = int.from_bytes(reply[:2], "big") if len(reply) >= 2 else -1
                    replies.setdefault(qid, []).append(reply)
                    due.discard(qid)
            if not closed:
                sock.sendall(tail)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(REPLY_WAIT)
                try:
                    rest = sock.recv(65535)
                    while rest:
                        buf += rest
                        rest = sock.recv(65535)
                except (TimeoutError, ConnectionResetError):
                    pass
            if buf:
                findings.append(Finding("tcp", tail, buf, "octets after the last reply"))
        return findings + self._judge("tcp", packets, replies, health_id)

    # -- the server itself ------------------------------------------------------------------------

    def new_log(self) -> str:
        """What the server printed since the last call."""
        assert self.server is not None
        with open(self.server.output, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        # Only whole lines: the rest is read next time.
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        return data[:end].decode("utf-8", "replace")

    def log_lines_for(self, qid: int) -> list[str]:
        """The ``log`` plugin's lines for queries with ID ``qid``, the last few, all workers."""
        assert self.server is not None
        marker = f" - {qid} ".encode()
        with open(self.server.output, "rb") as f:
            lines = [line for line in f if marker in line]
        return [line.decode("utf-8", "replace").rstrip() for line in lines[-5:]]

    def health(self) -> list[str]:
        """What is wrong with the server: workers gone or replaced, bugs in the log."""
        problems = []
        assert self.server is not None and self.server.process is not None
        if self.server.process.poll() is not None:
            problems.append(f"the server exited with {self.server.process.returncode}")
        now = self.processes()
        if now != self.pids:
            problems.append(f"worker processes changed: {sorted(self.pids)} -> {sorted(now)}")
            self.stats.restarts += len(self.pids - now)
            self.pids = now
        for line in self.new_log().splitlines():
            if any(marker in line for marker in LOG_PROBLEMS):
                problems.append(f"log: {line}")
        return problems

