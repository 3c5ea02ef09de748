"""Queries per second over DoQ, DoH3 and gRPC beside UDP, on ``whoami``, in one run.

    .venv/bin/python bench/transports_quic.py                 # every row, 10 s each
    .venv/bin/python bench/transports_quic.py --seconds 5 --only udp,doq --json out.json

dnsperf speaks UDP, TCP, DoT and DoH only (``dnsperf -h``: ``-m udp|tcp|dot|doh``), so DoQ, DoH3
and gRPC are driven by a Python load generator started by this script in a child process
(``--load KIND``): aioquic's sans-I/O client with several connections, each keeping a number of
streams in flight, for DoQ and DoH3; grpcio's futures for gRPC. The same Python generator also
drives UDP (``udp-py``), so that one row compares the server's transports with the same client
cost, and dnsperf drives UDP (``udp``), the number every other bench reports.

One server serves every address (one process, no multisocket). Rows run one after the other; for
each the table gives the qps, the server's CPU (100 % is one core), the load generator's, and the
server's CPU microseconds per answered query: on a 2-core machine the client takes the other
core and more, so qps says as much about the client as about us; the server's cost per query is
the figure that compares transports.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import READY, BenchError, ProcessUsage, dnsperf, free_port, start_coredns, stop_process

NAME = "bench.example."
CONNECTIONS = 4
"""Connections (or UDP sockets) of the Python generator."""
IN_FLIGHT = 32
"""Queries each connection keeps outstanding."""


# -- the load generators (run in a child: --load KIND) ---------------------------------------------

def _query(qid: int) -> bytes:
    import dns.message

    return dns.message.make_query(NAME, "A", id=qid).to_wire()


def _load_udp(port: int, seconds: float) -> int:
    """CONNECTIONS sockets, IN_FLIGHT queries each, a new one sent for each answer."""
    sel = selectors.DefaultSelector()
    socks = []
    wire = bytearray(_query(1))
    for _ in range(CONNECTIONS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, s)
        socks.append(s)
        for _ in range(IN_FLIGHT):
            s.send(wire)
    done = 0
    deadline = time.monotonic() + seconds
    last = {s: time.monotonic() for s in socks}
    while time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            ready: socket.socket = key.data
            while True:
                try:
                    ready.recv(4096)
                except BlockingIOError:
                    break
                done += 1
                last[ready] = time.monotonic()
                ready.send(wire)
        now = time.monotonic()
        for s in socks:  # a lost datagram: refill the window after a quiet second
            if now - last[s] > 1.0:
                last[s] = now
                for _ in range(IN_FLIGHT):
                    s.send(wire)
    return done


class _QuicLoad:
    """One aioquic client connection on a non-blocking UDP socket."""

    def __init__(self, port: int, alpn: str, ca_file: str) -> None:
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.connection import QuicConnection

        conf = QuicConfiguration(is_client=True, alpn_protocols=[alpn], server_name="localhost")
        conf.load_verify_locations(ca_file)
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(self.addr)
        self.sock.setblocking(False)
        self.conn = QuicConnection(configuration=conf)
        self.conn.connect(self.addr, now=time.monotonic())
        self.h3: Any = None
        if alpn == "h3":
            from aioquic.h3.connection import H3Connection

            self.h3 = H3Connection(self.conn)
        self.ready = False

    def flush(self) -> None:
        for data, _ in self.conn.datagrams_to_send(now=time.monotonic()):
            try:
                self.sock.send(data)
            except BlockingIOError:
                pass

    def receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            self.conn.receive_datagram(data, self.addr, now=time.monotonic())

    def timer(self) -> None:
        when = self.conn.get_timer()
        if when is not None and when <= time.monotonic():
            self.conn.handle_timer(now=time.monotonic())


def _load_quic(port: int, seconds: float, alpn: str, ca_file: str) -> int:
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic import events

    wire = _query(0)
    frame = len(wire).to_bytes(2, "big") + wire
    headers = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"),
               (b":path", b"/dns-query"), (b"content-type", b"application/dns-message"),
               (b"accept", b"application/dns-message"), (b"content-length", str(len(wire)).encode())]
    clients = [_QuicLoad(port, alpn, ca_file) for _ in range(CONNECTIONS)]
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
        c.flush()

    def send(c: _QuicLoad) -> None:
        stream = c.conn.get_next_available_stream_id()
        if c.h3 is None:
            c.conn.send_stream_data(stream, frame, end_stream=True)
        else:
            c.h3.send_headers(stream, headers)
            c.h3.send_data(stream, wire, end_stream=True)

    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(0.01):
            key.data.receive()
        for c in clients:
            c.timer()
            event = c.conn.next_event()
            while event is not None:
                if isinstance(event, events.HandshakeCompleted):
                    c.ready = True
                    for _ in range(IN_FLIGHT):
                        send(c)
                elif isinstance(event, events.ConnectionTerminated):
                    raise BenchError(f"the server closed a connection: {event}")
                elif c.h3 is None:
                    if isinstance(event, events.StreamDataReceived) and event.end_stream:
                        done += 1
                        send(c)
                else:
                    for h3_event in c.h3.handle_event(event):
                        if isinstance(h3_event, (DataReceived, HeadersReceived)) and h3_event.stream_ended:
                            done += 1
                            send(c)
                event = c.conn.next_event()
            c.flush()
    return done


def _load_grpc(port: int, seconds: float) -> int:
    import grpc

    from twisted_coredns.server.dnspb import QUERY_METHOD, decode_packet, encode_packet

    payload = encode_packet(_query(1))
    done = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    finished = threading.Event()
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(CONNECTIONS)]
    calls = [ch.unary_unary(QUERY_METHOD, response_deserializer=decode_packet) for ch in channels]
    running = [0]

    def start(call: Any) -> None:
        with lock:
            running[0] += 1
        call.future(payload, timeout=10).add_done_callback(lambda f: answered(call, f))

    def answered(call: Any, future: Any) -> None:
        nonlocal done
        ok = future.exception() is None
        with lock:
            running[0] -= 1
            if ok:
                done += 1
        if time.monotonic() < stop:
            start(call)
        else:
            with lock:
                if running[0] == 0:
                    finished.set()

    for call in calls:
        for _ in range(IN_FLIGHT):
            start(call)
    finished.wait(seconds + 15)
    for ch in channels:
        ch.close()
    return done


def _load(kind: str, port: int, seconds: float, ca_file: str) -> int:
    loads: dict[str, Callable[[], int]] = {
        "udp": lambda: _load_udp(port, seconds),
        "doq": lambda: _load_quic(port, seconds, "doq", ca_file),
        "doh3": lambda: _load_quic(port, seconds, "h3", ca_file),
        "grpc": lambda: _load_grpc(port, seconds),
    }
    return loads[kind]()


# -- the bench --------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    client: str
    qps: float
    server_cpu_percent: float
    client_cpu_percent: float
    other_cpu_percent: float
    server_us_per_query: float
    note: str = ""


def _corefile(ports: dict[str, int], cert: str, key: str) -> str:
    return (
        f".:{ports['udp']} {{\n    whoami\n}}\n"
        f"quic://.:{ports['doq']} {{\n    tls {cert} {key}\n    whoami\n}}\n"
        f"https3://.:{ports['doh3']} {{\n    tls {cert} {key}\n    whoami\n}}\n"
        f"grpc://.:{ports['grpc']} {{\n    whoami\n}}\n"
    )


ROWS = ("udp", "udp-py", "doq", "doh3", "grpc")
CLIENTS = {"udp": "python, UDP sockets", "doq": "python, aioquic", "doh3": "python, aioquic h3",
           "grpc": "python, grpcio futures"}


def _measure(pid: int, run: Callable[[], tuple[int, float]]) -> tuple[float, ProcessUsage, float]:
    """(qps, usage, server CPU µs per query) of one run returning (answered, seconds)."""
    from _common import tree_cpu_seconds

    cpu0 = tree_cpu_seconds(pid)
    (answered, wall), usage = ProcessUsage.measure(pid, run)
    cpu = tree_cpu_seconds(pid) - cpu0
    qps = answered / wall if wall else 0.0
    return qps, usage, (1e6 * cpu / answered if answered else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=10, help="length of each row (default 10)")
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows, comma-separated ({','.join(ROWS)})")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        start = time.monotonic()
        answered = _load(args.load, args.port, args.seconds, args.ca)
        print(json.dumps({"answered": answered, "seconds": time.monotonic() - start}))
        return 0

    from twisted_coredns.testing.certs import certificates

    only = [r for r in args.only.split(",") if r]
    unknown = set(only) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    if "udp" in only and shutil.which("dnsperf") is None:
        print("dnsperf is not installed (Debian: apt-get install dnsperf); the udp row is left out",
              file=sys.stderr)
        only.remove("udp")
    c = certificates()
    ports = {"udp": free_port(), "doq": free_port(), "doh3": free_port(), "grpc": free_port()}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-quic-") as tmp:
        directory = Path(tmp)
        queryfile = directory / "queries"
        queryfile.write_text(f"{NAME} A\n")
        try:
            proc, _log = start_coredns(directory, _corefile(ports, c.cert_file, c.key_file), ports["udp"],
                                       name="transports", ready=READY)
        except BenchError as exc:
            raise SystemExit(str(exc)) from None
        try:
            for name in only:
                if name == "udp":
                    def run_dnsperf() -> tuple[int, float]:
                        result = dnsperf(ports["udp"], queryfile, seconds=args.seconds, clients=CONNECTIONS,
                                         outstanding=CONNECTIONS * IN_FLIGHT)
                        return result.completed, result.completed / result.qps if result.qps else 1.0

                    qps, usage, us = _measure(proc.pid, run_dnsperf)
                    rows.append(Row("udp", "dnsperf -m udp", qps, usage.cpu_percent, usage.client_cpu_percent,
                                    usage.other_cpu_percent, us))
                    continue
                kind = "udp" if name == "udp-py" else name
                port = ports[kind]

                def run_python(kind: str = kind, port: int = port) -> tuple[int, float]:
                    out = subprocess.run(
                        [sys.executable, __file__, "--load", kind, "--port", str(port),
                         "--seconds", str(args.seconds), "--ca", c.ca_file],
                        capture_output=True, text=True, timeout=args.seconds + 60,
                        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
                    )
                    if out.returncode != 0:
                        raise BenchError(f"the {kind} load failed:\n{out.stderr[-3000:]}")
                    found = json.loads(out.stdout.strip().splitlines()[-1])
                    return int(found["answered"]), float(found["seconds"])

                qps, usage, us = _measure(proc.pid, run_python)
                rows.append(Row(name, CLIENTS[kind], qps, usage.cpu_percent, usage.client_cpu_percent,
                                usage.other_cpu_percent, us))
        finally:
            stop_process(proc)

    base = next((r.qps for r in rows if r.name == "udp"), 0.0)
    base_py = next((r.qps for r in rows if r.name == "udp-py"), 0.0)
    print(f"{CONNECTIONS} connections x {IN_FLIGHT} in flight, {args.seconds} s a row, whoami, one process;"
          " CPU: 100 % is one core, 'other' is the rest of the machine\n")
    print("| row | client | qps | x udp (dnsperf) | x udp (python) | server CPU % | client CPU % "
          "| other CPU % | server µs/query |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r.qps / base:.2f}" if base else "-"
        ratio_py = f"{r.qps / base_py:.2f}" if base_py else "-"
        print(f"| {r.name} | {r.client} | {r.qps:,.0f} | {ratio} | {ratio_py} | {r.server_cpu_percent:.0f} "
              f"| {r.client_cpu_percent:.0f} | {r.other_cpu_percent:.0f} | {r.server_us_per_query:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
