"""A real etcd for tests: Debian's ``etcd`` (etcd-server) on free loopback ports, in a temporary
data directory, one member or a cluster of several.

``EtcdCluster(size=1).start()`` runs the members and waits until the cluster has a leader and
answers reads; ``.endpoints`` are their client URLs (``http://127.0.0.1:PORT``). ``put``/``delete``
write through etcd's JSON gateway (fast, no process per write), ``etcdctl(*args)`` runs Debian's
``etcdctl`` (etcd-client) against every endpoint. For fault tests: ``leader()`` is the index of
the current leader, ``kill(i)`` ends a member at once (SIGKILL), ``restart(i)`` starts it again on
the same ports and data. Elections are fast (``heartbeat_ms`` 25, ``election_ms`` 250 by default) so
a fault test takes seconds. Nothing listens on anything but 127.0.0.1.

``etcd_missing()`` says why tests should be skipped (None when etcd and etcdctl are installed).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..plugins.etcd.client import prefix_range_end
from . import free_port, stop_child

ETCD = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
ETCDCTL = shutil.which("etcdctl") or ("/usr/bin/etcdctl" if Path("/usr/bin/etcdctl").exists() else None)


def etcd_missing() -> str | None:
    """A skip reason when etcd or etcdctl is not installed, else None."""
    if ETCD is None:
        return "etcd is not installed (apt-get install etcd-server)"
    if ETCDCTL is None:
        return "etcdctl is not installed (apt-get install etcd-client)"
    return None


def _b64(text: str | bytes) -> str:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


class _Member:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data = directory / name
        self.output = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.scheme = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    """``size`` etcd members forming one cluster on loopback."""

    def __init__(
        self,
        size: int = 1,
        *,
        heartbeat_ms: int = 25,
        election_ms: int = 250,
        client_ports: list[int] | None = None,
        tls: Any = None,
    ) -> None:
        """``client_ports`` fixes the members' client ports (a test that points a server at an
        etcd not started yet); ``tls`` (``testing.certs.Certificates``) serves https."""
        self.size = size
        self.client_ports = client_ports
        self.tls = tls
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.members: list[_Member] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    # -- the processes --------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> EtcdCluster:
        reason = etcd_missing()
        if reason is not None:
            raise RuntimeError(reason)
        # tmpfs when there is one: etcd fsyncs every write, and a disk makes writes slow.
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self._tmp = tempfile.TemporaryDirectory(prefix="etcd-test-", dir=base)
        directory = Path(self._tmp.name)
        self.members = [_Member(f"m{i}", directory) for i in range(self.size)]
        for member, port in zip(self.members, self.client_ports or [], strict=False):
            member.client_port = port
        if self.tls is not None:
            for member in self.members:
                member.scheme = "https"
        for i in range(self.size):
            self._spawn(i, new=True)
        self.wait_healthy(timeout)
        return self

    def _spawn(self, index: int, *, new: bool) -> None:
        assert ETCD is not None
        m = self.members[index]
        cluster = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        args = [
            ETCD, "--name", m.name, "--data-dir", str(m.data),
            "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", cluster, "--initial-cluster-token", f"test-{id(self)}",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_ms), "--election-timeout", str(self.election_ms),
            "--snapshot-count", "100000", "--log-level", "warn", "--logger", "zap",
        ]
        if self.tls is not None:
            # No --client-cert-auth: etcd's gateway presents the server certificate as a client
            # one to etcd itself, and the test CA's server certificate is for servers only.
            args += ["--cert-file", self.tls.cert_file, "--key-file", self.tls.key_file]
        with open(m.output, "ab") as out:
            m.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=m.data.parent)

    def kill(self, index: int) -> None:
        """End member ``index`` at once, as a crash would."""
        m = self.members[index]
        if m.process is not None and m.process.poll() is None:
            m.process.kill()
            m.process.wait()
        m.process = None

    def restart(self, index: int) -> None:
        """Start a killed member again, with its data (it rejoins the cluster)."""
        if self.members[index].process is None:
            self._spawn(index, new=False)

    def running(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.process is not None and m.process.poll() is None]

    def stop(self) -> None:
        for i in range(len(self.members)):
            m = self.members[i]
            stop_child(m.process)
            m.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return "\n".join(m.output.read_text(errors="replace") for m in self.members if m.output.exists())

    # -- state ----------------------------------------------------------------------------------

    def _post(
        self, path: str, body: dict[str, Any], *, member: int | None = None, timeout: float = 3.0
    ) -> Any:
        targets = [member] if member is not None else self.running()
        last: Exception | None = None
        for i in targets:
            url = self.members[i].client_url + path
            headers = {"Content-Type": "application/json"}
            request = urllib.request.Request(url, json.dumps(body).encode(), headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout, context=self._ssl_context()) as reply:
                    return json.loads(reply.read())
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = exc
        raise RuntimeError(f"etcd {path} failed: {last}")

    def _ssl_context(self) -> Any:
        if self.tls is None:
            return None
        import ssl

        context = ssl.create_default_context(cafile=self.tls.ca_file)
        context.load_cert_chain(self.tls.client_cert_file, self.tls.client_key_file)
        return context

    def leader(self) -> int | None:
        """The index of the member that leads now, or None (no quorum, or an election)."""
        ids: dict[str, int] = {}
        leaders: set[str] = set()
        for i in self.running():
            try:
                status = self._post("/v3/maintenance/status", {}, member=i, timeout=0.5)
            except RuntimeError:
                continue
            ids[status.get("header", {}).get("member_id", "")] = i
            if status.get("leader") not in (None, "0"):
                leaders.add(status["leader"])
        # A leader is one every answering member agrees on, and that answers itself.
        if len(leaders) == 1 and (leader := leaders.pop()) in ids:
            return ids[leader]
        return None

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in self.running():
                try:
                    self._post("/v3/kv/range", {"key": _b64("health")}, member=i, timeout=0.5)
                    if self.size == 1 or self.leader() is not None:
                        return
                except RuntimeError:
                    pass
            if not self.running():
                break
            time.sleep(0.05)
        raise RuntimeError(f"etcd did not become healthy within {timeout}s:\n{self.log()[-3000:]}")

    def put(self, key: str, value: str | bytes | dict[str, Any], *, lease: int = 0) -> None:
        data = json.dumps(value) if isinstance(value, dict) else value
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(data)}
        if lease:
            body["lease"] = lease
        self._post("/v3/kv/put", body)

    def delete(self, key: str, *, prefix: bool = False) -> None:
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_range_end(key.encode()))
        self._post("/v3/kv/deleterange", body)

    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its ID."""
        return int(self._post("/v3/lease/grant", {"TTL": ttl})["ID"])

    def etcdctl(self, *args: str, timeout: float = 10.0) -> str:
        """``etcdctl ARGS`` (API v3) against every member; its output. Raises on failure."""
        assert ETCDCTL is not None
        env = {**os.environ, "ETCDCTL_API": "3"}
        tls: list[str] = []
        if self.tls is not None:
            tls = ["--cacert", self.tls.ca_file, "--cert", self.tls.client_cert_file]
            tls += ["--key", self.tls.client_key_file]
        done = subprocess.run(
            [ETCDCTL, "--endpoints", ",".join(self.endpoints), "--dial-timeout", "2s", *tls, *args],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout
