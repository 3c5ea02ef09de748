"""The command line (`twisted-coredns`, CoreDNS's flags) and `twistd coredns`, as processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.exception
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.testing import SubprocessServer, free_port, query, run_cli


def _wait_answering(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}")
        try:
            query(port, "probe.example.", timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            continue
    raise AssertionError("server did not answer")


class FlagTests(SynchronousTestCase):
    def test_version(self) -> None:
        out = run_cli(["-version"])
        self.assertEqual(out.returncode, 0)
        self.assertTrue(out.stdout.startswith("twisted-coredns-"), out.stdout)

    def test_double_dash_and_equals_forms(self) -> None:
        self.assertEqual(run_cli(["--version"]).returncode, 0)
        self.assertEqual(run_cli(["-version=true"]).returncode, 0)

    def test_unknown_flag(self) -> None:
        out = run_cli(["-nosuchflag"])
        self.assertEqual(out.returncode, 2)
        self.assertIn("flag provided but not defined: -nosuchflag", out.stderr)

    def test_bad_corefile_exits_1_with_coredns_message_and_no_traceback(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            conf = Path(d, "Corefile")
            conf.write_text(". {\n whoami example.org\n}\n")
            out = run_cli(["-conf", str(conf), "-dns.port", "0"])
        self.assertEqual(out.returncode, 1)
        self.assertIn(
            f"plugin/whoami: {conf}:2 - Error during parsing: "
            "Wrong argument count or unexpected line ending after 'example.org'",
            out.stderr,
        )
        self.assertNotIn("Traceback", out.stderr + out.stdout)

    def test_corefile_bytes_are_read_as_coredns_reads_them(self) -> None:
        # A lone CR is a space, not a line (the fuzz test found the line numbers one off), and a
        # byte that is not UTF-8 is U+FFFD in the message, never a UnicodeDecodeError.
        for data, line, token in [(b"\r. {\r\n  whoami example.org\n}\n", 2, "example.org"),
                                  (b". {\n  whoami \xff\n}\n", 2, "\ufffd")]:
            with tempfile.TemporaryDirectory() as d:
                conf = Path(d, "Corefile")
                conf.write_bytes(data)
                out = run_cli(["-conf", str(conf), "-dns.port", "0"])
            self.assertEqual(out.returncode, 1, data)
            self.assertEqual(
                out.stderr,
                f"plugin/whoami: {conf}:{line} - Error during parsing: "
                f"Wrong argument count or unexpected line ending after '{token}'\n",
            )

    def test_missing_conf_file(self) -> None:
        out = run_cli(["-conf", "/nonexistent/Corefile"])
        self.assertEqual(out.returncode, 1)
        self.assertIn("no such file or directory", out.stderr)

    def test_transport_without_a_server_is_a_clear_error(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            Path(d, "Corefile").write_text("unix://.:8853 {\n whoami\n}\n")
            out = run_cli(["-conf", str(Path(d, "Corefile"))])
        self.assertEqual(out.returncode, 1)
        self.assertIn("cannot serve unix://:8853: transport 'unix' is not supported", out.stderr)
        self.assertNotIn("Traceback", out.stderr)

    def test_port_taken_without_reuseport_is_gos_listen_error(self) -> None:
        holder = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.addCleanup(holder.close)
        holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        holder.bind(("::", 0))
        port = holder.getsockname()[1]
        with tempfile.TemporaryDirectory() as d:
            Path(d, "Corefile").write_text(". {\n whoami\n}\n")
            out = run_cli(["-conf", str(Path(d, "Corefile")), "-dns.port", str(port)])
        self.assertEqual(out.returncode, 1)
        self.assertIn(f"listen udp :{port}: bind: address already in use", out.stderr)
        self.assertNotIn("Traceback", out.stderr)

    def test_duplicate_zone(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            Path(d, "Corefile").write_text("example.org {\n whoami\n}\nexample.org {\n whoami\n}\n")
            out = run_cli(["-conf", str(Path(d, "Corefile")), "-dns.port", "1053"])
        self.assertEqual(out.returncode, 1)
        self.assertIn("cannot serve dns://example.org.:1053 - it is already defined", out.stderr)


class RunTests(SynchronousTestCase):
    def test_default_corefile_without_a_corefile(self) -> None:
        """No Corefile in the working directory: CoreDNS's default `. { whoami log }`."""
        port = free_port()
        with tempfile.TemporaryDirectory() as d:
            proc = subprocess.Popen([sys.executable, "-m", "twisted_coredns", "-dns.port", str(port)],
                                    cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                _wait_answering(port, proc)
                r = query(port, "example.org.")
                self.assertEqual(len(r.additional), 2)
            finally:
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=10)
        text = out.decode()
        self.assertEqual(proc.returncode, 0, text)
        self.assertIn(f".:{port}\n", text)
        self.assertIn('"A IN example.org. udp', text)  # the log plugin's line

    def test_quiet_and_pidfile(self) -> None:
        server = SubprocessServer(". {\n whoami\n}\n")
        pidfile = server.directory / "coredns.pid"
        server.args = ["-quiet", "-pidfile", str(pidfile)]
        server.start()
        try:
            self.assertEqual(int(pidfile.read_text()), server.process.pid)  # type: ignore[union-attr]
            self.assertNotIn("twisted-coredns-", server.log())
        finally:
            code = server.stop()
        self.assertEqual(code, 0)
        self.assertFalse(pidfile.exists())

    def test_sigusr1_reloads_and_a_bad_corefile_keeps_the_old_one(self) -> None:
        with SubprocessServer(". {\n whoami\n}\n") as server:
            self.assertEqual(server.query("version.bind.", "TXT", rdclass="CH").rcode(), 5)
            server.corefile.write_text(". {\n chaos v9-reloaded\n whoami\n}\n")
            server.process.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
            server.wait_for_log("[INFO] Reloading complete")
            txt = server.query("version.bind.", "TXT", rdclass="CH")
            self.assertEqual(txt.answer[0][0].strings, (b"v9-reloaded",))
            server.corefile.write_text(". {\n nosuchplugin\n}\n")
            server.process.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
            log = server.wait_for_log("[ERROR] Restart failed: ")
            self.assertIn("Unknown directive 'nosuchplugin'", log)
            self.assertEqual(server.query("version.bind.", "TXT", rdclass="CH").rcode(), 0)
            self.assertEqual(len(server.query("example.org.").additional), 2)

    def test_sigterm_logs_as_coredns(self) -> None:
        server = SubprocessServer(". {\n whoami\n}\n").start()
        self.assertEqual(server.stop(), 0)
        self.assertIn("[INFO] SIGTERM: Shutting down servers then terminating", server.log())

    def test_unwritable_pidfile_is_logged_and_the_server_runs(self) -> None:
        server = SubprocessServer(". {\n whoami\n}\n", args=["-pidfile", "/nonexistent/dir/coredns.pid"])
        with server:
            self.assertEqual(server.query("example.org.").rcode(), 0)
            self.assertIn("[ERROR] Could not write pidfile: ", server.log())

    def test_sigint_stops_cleanly(self) -> None:
        server = SubprocessServer(". {\n whoami\n}\n").start()
        self.assertEqual(server.stop(signal.SIGINT), 0)

    def test_port_in_use(self) -> None:
        with SubprocessServer(". {\n whoami\n}\n") as first:
            # SO_REUSEPORT lets a second process share the port only from the same user; here we
            # check the server starts and both answer, as two CoreDNS processes would.
            second = SubprocessServer(". {\n whoami\n}\n", port=first.port).start()
            try:
                self.assertEqual(second.query("x.").rcode(), 0)
            finally:
                second.stop()


class TwistdTests(SynchronousTestCase):
    def test_twistd_coredns(self) -> None:
        port = free_port()
        twistd = Path(sys.executable).with_name("twistd")
        with tempfile.TemporaryDirectory() as d:
            Path(d, "Corefile").write_text(". {\n whoami\n}\n")
            proc = subprocess.Popen(
                [str(twistd), "-n", "--pidfile", "tw.pid", "coredns", "--conf", "Corefile",
                 "--dns.port", str(port)],
                cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            try:
                _wait_answering(port, proc)
                self.assertEqual(query(port, "example.org.", tcp=True).rcode(), 0)
                self.assertTrue(Path(d, "tw.pid").exists())
            finally:
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=10)
            self.assertFalse(Path(d, "tw.pid").exists())
        # twistd re-raises the signal it stopped on, so its exit status is "killed by SIGTERM".
        self.assertIn(proc.returncode, (0, -signal.SIGTERM), out.decode())
        self.assertIn("Server Shut Down.", out.decode())

    def test_twistd_lists_coredns(self) -> None:
        twistd = Path(sys.executable).with_name("twistd")
        out = subprocess.run([str(twistd), "--help"], capture_output=True, text=True, timeout=60)
        self.assertIn("coredns", out.stdout)

    def test_twistd_bad_corefile(self) -> None:
        twistd = Path(sys.executable).with_name("twistd")
        with tempfile.TemporaryDirectory() as d:
            Path(d, "Corefile").write_text(". {\n nosuch\n}\n")
            out = subprocess.run([str(twistd), "-n", "--pidfile=", "coredns", "--conf", "Corefile"],
                                 cwd=d, capture_output=True, text=True, timeout=60,
                                 env={**os.environ})
        self.assertNotEqual(out.returncode, 0)
        output = out.stdout + out.stderr
        self.assertIn("Corefile:2 - Error during parsing: Unknown directive 'nosuch'", output)
        self.assertNotIn("Traceback", out.stdout + out.stderr)
