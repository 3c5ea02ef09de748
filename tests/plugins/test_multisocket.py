"""multisocket: the directive's arguments and errors (worded as CoreDNS's), its default (usable
CPUs, cgroup quota included), which block decides for an address, and SO_REUSEPORT binding."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import CorefileError
from twisted_coredns.instance import build
from twisted_coredns.launcher import cpus
from twisted_coredns.launcher.master import MasterService, uses_workers
from twisted_coredns.server.sockets import bind_late
from twisted_coredns.strconv import atoi as go_atoi
from twisted_coredns.testing import run_cli

PREFIX = "plugin/multisocket: Corefile:2 - Error during parsing: "


def _block(line: str) -> str:
    return f". {{\n{line}\nwhoami\n}}\n"


def _num_sockets(corefile: str) -> list[int]:
    return [g.num_sockets for g in build(corefile, dns_port=0, default_host="127.0.0.1").groups]


class SetupTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        rows = [
            ("multisocket 1", 1),
            ("multisocket 2", 2),
            ("multisocket 1024", 1024),
            ("multisocket +4", 4),
            ("multisocket 007", 7),
            ('multisocket "3"', 3),
            ("  multisocket 5   # comment", 5),
        ]
        for line, want in rows:
            self.assertEqual(_num_sockets(_block(line)), [want], line)

    def test_errors(self) -> None:
        invalid = 'invalid num sockets: strconv.Atoi: parsing "{}": invalid syntax'
        out_of_range = 'invalid num sockets: strconv.Atoi: parsing "{}": value out of range'
        rows = [
            ("multisocket text", PREFIX + invalid.format("text")),
            ("multisocket 0", PREFIX + "num sockets can not be zero or negative: 0"),
            ("multisocket -1", PREFIX + "num sockets can not be zero or negative: -1"),
            ("multisocket -0", PREFIX + "num sockets can not be zero or negative: 0"),
            ("multisocket 1025", PREFIX + "num sockets exceeds maximum (1024): 1025"),
            ("multisocket 9223372036854775807",
             PREFIX + "num sockets exceeds maximum (1024): 9223372036854775807"),
            ("multisocket 99999999999999999999", PREFIX + out_of_range.format("99999999999999999999")),
            ("multisocket -9223372036854775809", PREFIX + out_of_range.format("-9223372036854775809")),
            ("multisocket 2 2", PREFIX + "Wrong argument count or unexpected line ending after '2'"),
            ("multisocket 2 text 3", PREFIX + "Wrong argument count or unexpected line ending after '3'"),
            ("multisocket 2 {\nblock\n}", PREFIX + "Unexpected token '{', expecting argument"),
            ("multisocket {\n}", PREFIX + "Unexpected token '{', expecting argument"),
            # Too many arguments is found before a bad number.
            ("multisocket x y", PREFIX + "Wrong argument count or unexpected line ending after 'y'"),
            # Only what Go's strconv.Atoi accepts.
            ('multisocket " 4"', PREFIX + invalid.format(" 4")),
            ('multisocket "4 "', PREFIX + invalid.format("4 ")),
            ("multisocket 4.0", PREFIX + invalid.format("4.0")),
            ("multisocket 0x4", PREFIX + invalid.format("0x4")),
            ("multisocket 1_0", PREFIX + invalid.format("1_0")),
            ("multisocket \u0663", PREFIX + invalid.format("\u0663")),
            ("multisocket \uff14", PREFIX + invalid.format("\uff14")),
            ("multisocket +", PREFIX + invalid.format("+")),
            ('multisocket ""', PREFIX + invalid.format("")),
            ('multisocket "a\\"b"', PREFIX + invalid.format('a\\"b')),
        ]
        for line, want in rows:
            with self.assertRaises(CorefileError, msg=line) as caught:
                build(_block(line), dns_port=0)
            self.assertEqual(str(caught.exception), want, line)

    def test_twice_in_one_block(self) -> None:
        for second in ("multisocket 3", "multisocket"):
            corefile = f". {{\nmultisocket 2\nwhoami\n{second}\n}}\n"
            with self.assertRaises(CorefileError, msg=second) as caught:
                build(corefile, dns_port=0)
            self.assertEqual(
                str(caught.exception),
                "plugin/multisocket: Corefile:4 - Error during parsing: "
                "Wrong argument count or unexpected line ending after 'multisocket'",
            )

    def test_error_names_the_file(self) -> None:
        with self.assertRaises(CorefileError) as caught:
            build(_block("multisocket 0"), "/etc/coredns/Corefile", dns_port=0)
        self.assertTrue(str(caught.exception).startswith("plugin/multisocket: /etc/coredns/Corefile:2 - "))

    def test_go_atoi(self) -> None:
        self.assertEqual(go_atoi("-9223372036854775808"), -(2**63))
        self.assertEqual(go_atoi("+0"), 0)
        for bad in ("", " 1", "1\n", "1e3", "٣", "0b1"):
            self.assertRaises(ValueError, go_atoi, bad)

    def test_default_is_usable_cpus(self) -> None:
        with mock.patch.object(cpus, "usable_cpus", return_value=7):
            self.assertEqual(_num_sockets(_block("multisocket")), [7])
        with mock.patch.dict(os.environ, {"GOMAXPROCS": "3"}):
            self.assertEqual(_num_sockets(_block("multisocket")), [3])

    def test_no_handler(self) -> None:
        instance = build(_block("multisocket 3"), dns_port=0)
        self.assertEqual(instance.blocks[0].plugins, ["multisocket", "whoami"])
        self.assertEqual([h.name for h in instance.blocks[0].handlers], ["whoami"])

    def test_first_block_wins_per_address(self) -> None:
        corefile = (
            "example.org:1053 {\nmultisocket 3\nwhoami\n}\n"
            "example.net:1053 {\nmultisocket 5\nwhoami\n}\n"
            ".:1054 {\nmultisocket 2\nwhoami\n}\n"
            "example.org:1055 {\nwhoami\n}\n"
            ".:1055 {\nmultisocket 4\nwhoami\n}\n"
        )
        groups = build(corefile, dns_port=53, default_host="127.0.0.1").groups
        self.assertEqual(
            {g.address: g.num_sockets for g in groups},
            {"dns://127.0.0.1:1053": 3, "dns://127.0.0.1:1054": 2, "dns://127.0.0.1:1055": 1},
        )
        # One block with several keys: every key's address gets the block's value.
        groups = build("a.example:2001 b.example:2002 {\nmultisocket 6\nwhoami\n}\n", dns_port=0).groups
        self.assertEqual([g.num_sockets for g in groups], [6, 6])

    def test_only_more_than_one_socket_uses_workers(self) -> None:
        rows = [
            (_block("whoami"), False),
            (_block("multisocket 1"), False),
            (_block("multisocket 2"), True),
            (".:1053 {\nwhoami\n}\n.:1054 {\nmultisocket 2\nwhoami\n}\n", True),
        ]
        for corefile, want in rows:
            self.assertEqual(uses_workers(build(corefile, dns_port=53)), want, corefile)


class UsableCPUsTests(SynchronousTestCase):
    """``usable_cpus`` against fake cgroup trees, as automaxprocs reads them."""

    def _tree(self, files: dict[str, str], proc_cgroup: str) -> tuple[str, str]:
        root = Path(tempfile.mkdtemp(prefix="cgroup-"))
        self.addCleanup(lambda: __import__("shutil").rmtree(root, ignore_errors=True))
        for rel, text in files.items():
            path = root / "fs" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (root / "cgroup").write_text(proc_cgroup)
        return str(root / "fs"), str(root / "cgroup")

    def test_rows(self) -> None:
        v2 = "0::/\n"
        v2_nested = "0::/kubepods/pod1/ctr\n"
        v1 = "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n"
        v1_split = "2:cpuacct:/\n1:cpu:/\n"
        rows = [
            # (name, files, /proc/self/cgroup, affinity, expected)
            ("v2 no quota", {"cpu.max": "max 100000\n"}, v2, 8, 8),
            ("v2 1.5 CPUs floors to 1", {"cpu.max": "150000 100000\n"}, v2, 8, 1),
            ("v2 2.5 CPUs", {"cpu.max": "250000 100000\n"}, v2, 8, 2),
            ("v2 0.5 CPU is at least 1", {"cpu.max": "50000 100000\n"}, v2, 8, 1),
            ("v2 quota above affinity", {"cpu.max": "1600000 100000\n"}, v2, 4, 4),
            ("v2 nested cgroup", {"kubepods/pod1/ctr/cpu.max": "300000 100000\n",
                                  "cpu.max": "max 100000\n"}, v2_nested, 16, 3),
            ("v2 path of the host, mount of the container", {"cpu.max": "200000 100000\n"}, v2_nested, 16, 2),
            ("v1 quota", {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
                          "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, v1, 8, 3),
            ("v1 no quota", {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1\n",
                             "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, v1, 8, 8),
            ("v1 split controllers", {"cpu/cpu.cfs_quota_us": "200000\n",
                                      "cpu/cpu.cfs_period_us": "100000\n"}, v1_split, 8, 2),
            ("nothing readable", {}, v2, 6, 6),
            ("garbage", {"cpu.max": "lots\n"}, v2, 6, 6),
        ]
        for name, files, proc, affinity, want in rows:
            root, proc_path = self._tree(files, proc)
            got = cpus.usable_cpus(root, proc_path, env={}, affinity=affinity)
            self.assertEqual(got, want, name)

    def test_gomaxprocs_wins(self) -> None:
        root, proc = self._tree({"cpu.max": "100000 100000\n"}, "0::/\n")
        self.assertEqual(cpus.usable_cpus(root, proc, env={"GOMAXPROCS": "6"}, affinity=2), 6)
        for ignored in ("0", "-2", "x", ""):
            got = cpus.usable_cpus(root, proc, env={"GOMAXPROCS": ignored}, affinity=2)
            self.assertEqual(got, 1, ignored)

    def test_this_machine(self) -> None:
        n = cpus.usable_cpus(env={})
        self.assertGreaterEqual(n, 1)
        self.assertLessEqual(n, len(os.sched_getaffinity(0)))


class ReusePortTests(SynchronousTestCase):
    def test_sockets_per_address(self) -> None:
        corefile = "example.org:0 {\nmultisocket 3\nwhoami\n}\nexample.net:0 {\nwhoami\n}\n"
        instance = build(corefile, dns_port=0, default_host="127.0.0.1")
        master = MasterService(instance)
        master._bind(instance)
        self.addCleanup(master.close_sockets)
        # One address (port 0 shared by both keys): the first block's 3 decides; one port for all.
        self.assertEqual(master.socket_counts(), {"dns://127.0.0.1:0": 3})
        first, *others = master.sockets["dns://127.0.0.1:0"]
        port = first[0].getsockname()[1]
        self.assertNotEqual(port, 0)
        # The others are bound by the worker that reads them, as it starts (bind_late): until then
        # they take no share of the port's queries.
        for udp, tcp in others:
            self.assertEqual((udp.getsockname()[1], tcp.getsockname()[1]), (0, 0))
            bind_late(udp, "127.0.0.1", port)
            bind_late(tcp, "127.0.0.1", port)
        ports = {udp.getsockname()[1] for udp, _tcp in master.sockets["dns://127.0.0.1:0"]}
        ports |= {tcp.getsockname()[1] for _udp, tcp in master.sockets["dns://127.0.0.1:0"]}
        self.assertEqual(len(ports), 1)
        for udp, tcp in master.sockets["dns://127.0.0.1:0"]:
            self.assertEqual(udp.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT), 1)
            self.assertFalse(udp.getblocking())
            self.assertFalse(tcp.getblocking())

    def test_without_reuseport_the_second_bind_fails(self) -> None:
        instance = build(_block("multisocket 2"), dns_port=0, default_host="127.0.0.1")
        master = MasterService(instance)
        events: list[dict[str, object]] = []
        observer: Any = events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.addCleanup(master.close_sockets)
        with mock.patch.dict(socket.__dict__):
            del socket.__dict__["SO_REUSEPORT"]  # as on a system without it
            master._bind(instance)
            (first, _), (second, _tcp) = master.sockets["dns://127.0.0.1:0"]
            # The second socket is bound by its worker, where the bind fails as CoreDNS's does.
            with self.assertRaises(OSError) as caught:
                bind_late(second, "127.0.0.1", first.getsockname()[1])
        self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
        self.assertIn("bind: address already in use", str(caught.exception))
        formats = [str(e.get("log_format", "")) for e in events]
        self.assertTrue(any("Failed to set SO_REUSEPORT on socket" in f for f in formats), formats)

    def test_cli_address_in_use(self) -> None:
        # A socket without SO_REUSEPORT holds the port: the master cannot join it, and says so
        # before any worker starts.
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "Corefile").write_text(f"127.0.0.1:{port} {{\nmultisocket 2\nwhoami\n}}\n")
            result = run_cli(["-conf", "Corefile"], cwd=tmp, timeout=30)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("address already in use", result.stderr.lower())
        self.assertNotIn("worker=", result.stdout + result.stderr)

    def test_cli_errors_before_any_worker(self) -> None:
        corefile = ".:0 {\nmultisocket 2\nwhoami\n}\nexample.org:0 {\nmultisocket 1025\nwhoami\n}\n"
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "Corefile").write_text(corefile)
            result = run_cli(["-conf", "Corefile"], cwd=tmp, timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.strip(),
            "plugin/multisocket: Corefile:6 - Error during parsing: num sockets exceeds maximum (1024): 1025",
        )
        self.assertNotIn("worker=", result.stdout)
