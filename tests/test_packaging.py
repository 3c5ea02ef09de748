"""The packaging works as installed, not only in this checkout.

The flat layout (``twisted_coredns/`` and the dropins in ``twisted/plugins/`` at the repo root,
``package-dir = {"" = "."}``) is easy to break without any other test noticing: a wheel that ships
``twisted/__init__.py`` or ``tests/``, an editable install that hides the dropins behind an import
hook, or a ``twisted/`` folder in the checkout that shadows the installed Twisted. So this file
builds a wheel, installs it into a fresh venv, makes an editable install into a second one, and
runs the real commands (``twisted-coredns -plugins``, ``twistd coredns --help``) from outside the
checkout, with and without the example third-party plugin. Everything runs as subprocesses.

The fresh venvs borrow the project venv's dependencies through a ``deps.pth`` (a directory added
by a .pth file is not itself scanned for .pth files, so the project's editable path does not leak
in); nothing is downloaded.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.interfaces import IPluginFactory

ROOT = Path(__file__).resolve().parents[1]
GREET = ROOT / "plugins" / "coredns-greet"
# The project venv: its site-packages is what the fresh venvs borrow, and what "the installed
# Twisted" means below.
PROJECT_SITE = Path(sysconfig.get_path("purelib")).resolve()
DROPINS = ("coredns_builtins.py", "coredns_twistd.py")
TIMEOUT = 300.0

# What a console script named twistd does; the fresh venvs have no twistd script of their own
# because Twisted is borrowed, not installed, there.
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"

# Printed by the interpreter of a venv: where things were really imported from.
WHERE = """\
import importlib.metadata as md, json, sys
import twisted, twisted_coredns, twisted.plugins.coredns_builtins as builtins
print(json.dumps({
    "twisted": twisted.__file__,
    "twisted_coredns": twisted_coredns.__file__,
    "dropin": builtins.__file__,
    "dists": [str(d._path) for d in md.distributions() if d.metadata["Name"] == "twisted-coredns"],
    "sys_path": sys.path,
}))
"""

# Imported by pytest at collection time; pytest captures stdout then, so it reports to a file.
PROBE = """\
import json, os, sys
import twisted, twisted.plugins, twisted.plugins.coredns_builtins as builtins

with open(os.environ["COREDNS_PROBE_OUT"], "w") as out:
    json.dump({
        "twisted": twisted.__file__,
        "twisted_path": list(twisted.__path__),
        "plugins_path": list(twisted.plugins.__path__),
        "dropin": builtins.__file__,
        "sys_path": sys.path,
    }, out)


def test_probe():
    pass
"""


def builtin_names() -> list[str]:
    """The built-ins as the dropin names them, so a new plugin needs no edit here."""
    import twisted.plugins.coredns_builtins as builtins

    return sorted(v.name for v in vars(builtins).values() if IPluginFactory.providedBy(v))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    # No index: an install that needs a download is a failure here, not a slow test.
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=TIMEOUT)


def _run_all(
    cmds: list[list[str]], cwd: Path, envs: list[dict[str, str]] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Independent steps side by side: the set-up is mostly waiting on pip and imports."""
    procs = [
        subprocess.Popen(cmd, cwd=cwd, env=(envs[i] if envs else _env()), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i, cmd in enumerate(cmds)
    ]
    done: list[subprocess.CompletedProcess[str]] = []
    for cmd, proc in zip(cmds, procs, strict=True):
        out, err = proc.communicate(timeout=TIMEOUT)
        done.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return done


def _check(done: list[subprocess.CompletedProcess[str]]) -> None:
    for d in done:
        if d.returncode != 0:
            cmd = " ".join(map(str, d.args))
            raise RuntimeError(f"{cmd} failed ({d.returncode}):\n{d.stdout}\n{d.stderr}")


@dataclass(frozen=True)
class Venv:
    path: Path
    site: Path
    plugins_before_greet: subprocess.CompletedProcess[str]

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")


@dataclass(frozen=True)
class Installed:
    tmp: Path
    wheel: Path
    wheel_venv: Venv
    editable_venv: Venv


_state: tuple[tempfile.TemporaryDirectory[str], Installed] | None = None


def _installed() -> Installed:
    """Build and install once per test run (trial has no setUpClass)."""
    global _state
    if _state is None:
        tmp_dir = tempfile.TemporaryDirectory(prefix="coredns-packaging-")
        atexit.register(tmp_dir.cleanup)
        try:
            _state = (tmp_dir, _set_up(Path(tmp_dir.name)))
        except BaseException:
            tmp_dir.cleanup()
            raise
    return _state[1]


def _set_up(tmp: Path) -> Installed:
    dist = tmp / "dist"
    # A build directory of its own for each build: setuptools never empties build/lib, so a build
    # in the checkout could ship files deleted since, and would leave build/ and *.egg-info behind.
    envs = []
    for name in ("project", "greet"):
        cfg = tmp / f"{name}.cfg"
        cfg.write_text(f"[build]\nbuild_base = {tmp / name / 'build'}\n[egg_info]\negg_base = {tmp / name}\n")
        (tmp / name).mkdir()
        envs.append(_env(DIST_EXTRA_CONFIG=str(cfg)))
    wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist)]
    _check(_run_all([[*wheel, str(ROOT)], [*wheel, str(GREET)]], tmp, envs))
    (project_whl,) = dist.glob("twisted_coredns-*.whl")
    (greet_whl,) = dist.glob("coredns_greet-*.whl")

    paths = {kind: tmp / f"venv-{kind}" for kind in ("wheel", "editable")}
    _check(_run_all([[sys.executable, "-m", "venv", "--without-pip", str(p)] for p in paths.values()], tmp))
    sites: dict[str, Path] = {}
    for kind, path in paths.items():
        (sites[kind],) = path.glob("lib/python*/site-packages")
        (sites[kind] / "deps.pth").write_text(f"{PROJECT_SITE}\n")

    def pip_install(kind: str, *args: str) -> list[str]:
        # The project venv's pip, aimed at the fresh venv. -I: never look at (or uninstall) the
        # twisted-coredns the fresh venv can see through deps.pth.
        return [sys.executable, "-m", "pip", "--python", str(paths[kind] / "bin" / "python"), "install", "-q",
                "--no-deps", "--no-build-isolation", "-I", *args]

    _check(_run_all([pip_install("wheel", str(project_whl)), pip_install("editable", "-e", str(ROOT))], tmp))
    before = _run_all([[str(p / "bin" / "twisted-coredns"), "-plugins"] for p in paths.values()], tmp)
    _check(before)
    _check(_run_all([pip_install(kind, str(greet_whl)) for kind in paths], tmp))
    venvs = {
        kind: Venv(path, sites[kind], out) for (kind, path), out in zip(paths.items(), before, strict=True)
    }
    return Installed(tmp, project_whl, venvs["wheel"], venvs["editable"])


def _within(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


class WheelContentsTests(SynchronousTestCase):
    def setUp(self) -> None:
        with zipfile.ZipFile(_installed().wheel) as whl:
            self.names = whl.namelist()

    def test_ships_the_dropins(self) -> None:
        for dropin in DROPINS:
            self.assertIn(f"twisted/plugins/{dropin}", self.names)
        # Nothing else under twisted/: above all not twisted/__init__.py or
        # twisted/plugins/__init__.py, which would overwrite Twisted's own on install.
        self.assertEqual(sorted(n for n in self.names if n.startswith("twisted/")),
                         [f"twisted/plugins/{d}" for d in DROPINS])

    def test_ships_no_cache_or_bytecode(self) -> None:
        # A shipped dropin.cache would be stale everywhere but here; pip removes only what RECORD lists.
        self.assertEqual([n for n in self.names if n.endswith((".cache", ".pyc")) or "__pycache__" in n], [])

    def test_ships_only_our_packages(self) -> None:
        top = {n.split("/")[0] for n in self.names}
        self.assertEqual(top, {"twisted", "twisted_coredns", "twisted_coredns-0.1.0.dist-info"})

    def test_ships_every_module(self) -> None:
        on_disk = {
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / "twisted_coredns").rglob("*.py")
            if "__pycache__" not in p.parts
        }
        self.assertEqual(sorted(on_disk - set(self.names)), [])
        self.assertIn("twisted_coredns/py.typed", self.names)


if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class _InstallChecks(_Base):
    """Run in each fresh venv, from a directory outside the checkout."""

    def venv(self) -> Venv:
        raise NotImplementedError

    def run_in_venv(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(list(args), cwd=_installed().tmp)

    def where(self) -> dict[str, object]:
        out = self.run_in_venv(self.venv().python, "-c", WHERE)
        self.assertEqual(out.returncode, 0, out.stderr)
        found: dict[str, object] = json.loads(out.stdout)
        return found

    def assert_lists_builtins(self, out: subprocess.CompletedProcess[str]) -> None:
        self.assertEqual(out.returncode, 0, out.stderr)
        for name in builtin_names():
            self.assertIn(f"  dns.{name}\n", out.stdout)

    def test_borrows_twisted_from_the_project_venv(self) -> None:
        self.assertTrue(_within(str(self.where()["twisted"]), PROJECT_SITE))

    def test_the_venv_distribution_comes_first(self) -> None:
        dists = self.where()["dists"]
        assert isinstance(dists, list)
        self.assertTrue(_within(dists[0], self.venv().site), dists)

    def test_plugins_lists_builtins(self) -> None:
        before = self.venv().plugins_before_greet
        self.assert_lists_builtins(before)
        self.assertNotIn("greet", before.stdout)

    def test_plugins_lists_greet_once(self) -> None:
        # Installed as a wheel, so its dropin sits in the venv's own twisted/plugins.
        self.assertTrue((self.venv().site / "twisted" / "plugins" / "coredns_greet_dropin.py").exists())
        out = self.run_in_venv(str(self.venv().path / "bin" / "twisted-coredns"), "-plugins")
        self.assert_lists_builtins(out)
        # Found both as a dropin and as an entry point: still one plugin, and no warning about it.
        self.assertEqual(out.stdout.count("  dns.greet\n"), 1, out.stdout)
        self.assertNotIn("ignored", out.stdout + out.stderr)

    def test_twistd_coredns_help(self) -> None:
        out = self.run_in_venv(self.venv().python, "-c", TWISTD, "coredns", "--help")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Usage: twistd [options] coredns [options]", out.stdout)
        for option in ("--conf=", "--dns.port=", "--quiet"):
            self.assertIn(option, out.stdout)


class WheelInstallTests(_InstallChecks, SynchronousTestCase):
    def venv(self) -> Venv:
        return _installed().wheel_venv

    def test_imported_from_the_wheel(self) -> None:
        where = self.where()
        site = self.venv().site
        self.assertTrue(_within(str(where["twisted_coredns"]), site), where)
        self.assertTrue(_within(str(where["dropin"]), site / "twisted" / "plugins"), where)
        # Proves the project venv's __editable__ .pth was not processed through deps.pth.
        sys_path = where["sys_path"]
        assert isinstance(sys_path, list)
        self.assertNotIn(ROOT, [Path(p).resolve() for p in sys_path if p])


class EditableInstallTests(_InstallChecks, SynchronousTestCase):
    def venv(self) -> Venv:
        return _installed().editable_venv

    def test_a_plain_path_entry(self) -> None:
        # A static path (not an import hook) is what lets Twisted's plugin scan see twisted/plugins.
        (pth,) = self.venv().site.glob("__editable__.twisted_coredns-*.pth")
        self.assertEqual(pth.read_text().split(), [str(ROOT)])

    def test_imported_from_the_checkout(self) -> None:
        where = self.where()
        self.assertEqual(Path(str(where["twisted_coredns"])), ROOT / "twisted_coredns" / "__init__.py")
        self.assertEqual(Path(str(where["dropin"])), ROOT / "twisted" / "plugins" / "coredns_builtins.py")


class NoShadowTests(SynchronousTestCase):
    """``python -m pytest`` from the repo root puts the root first on sys.path, next to a twisted/
    folder. That folder has no __init__.py, so it is only a namespace portion: the installed
    Twisted (a regular package) must win, and still find our dropins."""

    def probe(self, *cmd: str) -> dict[str, list[str] | str]:
        with tempfile.TemporaryDirectory(prefix="coredns-probe-") as tmp:
            probe, report = Path(tmp, "test_probe.py"), Path(tmp, "report.json")
            probe.write_text(PROBE)
            env = _env(COREDNS_PROBE_OUT=str(report))
            out = _run([sys.executable, *cmd, str(probe)], cwd=ROOT, env=env)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            found: dict[str, list[str] | str] = json.loads(report.read_text())
        return found

    def assert_installed_twisted_wins(self, found: dict[str, list[str] | str]) -> None:
        twisted_dir = PROJECT_SITE / "twisted"
        self.assertEqual(Path(str(found["twisted"])).resolve(), twisted_dir / "__init__.py")
        self.assertEqual([Path(p).resolve() for p in found["twisted_path"]], [twisted_dir])
        plugins_path = [Path(p).resolve() for p in found["plugins_path"]]
        self.assertIn(twisted_dir / "plugins", plugins_path)
        self.assertIn(ROOT / "twisted" / "plugins", plugins_path)
        self.assertEqual(Path(str(found["dropin"])), ROOT / "twisted" / "plugins" / "coredns_builtins.py")

    def assert_root_before_site(self, sys_path: list[str] | str) -> None:
        """The shadowing set-up really was there: the repo root ahead of site-packages."""
        # Relative entries ('' above all) are relative to the child's cwd, the repo root.
        resolved = [(ROOT / p).resolve() for p in sys_path]
        self.assertLess(resolved.index(ROOT), resolved.index(PROJECT_SITE), sys_path)

    def test_python_m_pytest_from_the_root(self) -> None:
        found = self.probe("-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider",
                           "--co", "-q")
        self.assert_root_before_site(found["sys_path"])
        self.assert_installed_twisted_wins(found)

    def test_python_from_the_root(self) -> None:
        # `python FILE` puts FILE's folder first, not the cwd; `python -c` puts the cwd, as '' .
        found = self.probe("-c", "import runpy, sys; runpy.run_path(sys.argv[1])")
        self.assert_root_before_site(found["sys_path"])
        self.assert_installed_twisted_wins(found)
