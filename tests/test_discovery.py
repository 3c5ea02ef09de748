"""Plugins are found through twisted.plugin.getPlugins (and entry points): the built-ins, and the
example third-party package once pip has installed it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.interfaces import IPluginFactory
from twisted_coredns.plugin import Plugin
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.testing import SubprocessServer, run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "coredns-greet"


class BuiltinDiscoveryTests(SynchronousTestCase):
    def test_builtins_come_from_the_dropin(self) -> None:
        reg = default_registry()
        for name in ("whoami", "log", "errors", "debug", "root", "bind", "chaos", "any"):
            self.assertIn(name, reg)
        sources = {r.name: r.source for r in reg}
        self.assertTrue(sources["whoami"].startswith("dropin:twisted_coredns."), sources["whoami"])

    def test_factories_provide_the_interface(self) -> None:
        for registered in default_registry():
            self.assertTrue(IPluginFactory.providedBy(registered.factory), registered)

    def test_registry_rejects_non_plugins(self) -> None:
        with self.assertRaises(TypeError):
            Registry().add(object(), "test")

    def test_first_registration_wins(self) -> None:
        reg = Registry()
        first = Plugin("dup", lambda c: None)
        reg.add(first, "one")
        reg.add(Plugin("dup", lambda c: None), "two")
        self.assertIs(reg["dup"], first)

    def test_plugins_flag_lists_builtins(self) -> None:
        out = run_cli(["-plugins"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("  dns.whoami\n", out.stdout)
        self.assertIn("Other plugins:", out.stdout)

    def test_unknown_directive(self) -> None:
        from twisted_coredns.corefile import CorefileError
        from twisted_coredns.instance import build

        with self.assertRaises(CorefileError) as exc:
            build(". {\n whoami\n foo\n}\n", dns_port=0)
        self.assertEqual(str(exc.exception), "Corefile:3 - Error during parsing: Unknown directive 'foo'")


_install: tempfile.TemporaryDirectory[str] | None = None


def _installed_example() -> str:
    """pip-install the example package once per test run (trial has no setUpClass)."""
    global _install
    if _install is None:
        tmp = tempfile.TemporaryDirectory(prefix="coredns-plugin-")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
               "--target", tmp.name, str(EXAMPLE)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            tmp.cleanup()
            raise RuntimeError(f"pip install of the example plugin failed:\n{done.stdout}\n{done.stderr}")
        _install = tmp
    return _install.name


class ThirdPartyPluginTests(SynchronousTestCase):
    """pip installs plugins/coredns-greet into a directory that becomes part of the test
    environment (PYTHONPATH of the servers started here); nothing in twisted_coredns changes."""

    def setUp(self) -> None:
        self.target = _installed_example()

    def env(self) -> dict[str, str]:
        paths = [self.target, os.environ.get("PYTHONPATH", "")]
        return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}

    def test_wheel_does_not_ship_twisted_init(self) -> None:
        self.assertTrue((Path(self.target) / "twisted" / "plugins" / "coredns_greet_dropin.py").exists())
        self.assertFalse((Path(self.target) / "twisted" / "plugins" / "__init__.py").exists())
        self.assertFalse((Path(self.target) / "twisted" / "__init__.py").exists())

    def test_listed_once_by_plugins_flag(self) -> None:
        out = run_cli(["-plugins"], env=self.env())
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.count("  dns.greet\n"), 1, out.stdout)
        self.assertNotIn("ignored", out.stdout + out.stderr)
        without = run_cli(["-plugins"])
        self.assertNotIn("dns.greet", without.stdout)

    def test_serves_queries(self) -> None:
        corefile = 'example.org {\n greet {\n  text "hi {name}"\n  ttl 42\n }\n whoami\n}\n'
        with SubprocessServer(corefile, env=self.env()) as server:
            txt = server.query("www.example.org.", "TXT")
            self.assertEqual(txt.rcode(), 0)
            self.assertEqual(txt.answer[0].ttl, 42)
            self.assertEqual(txt.answer[0][0].strings, (b"hi www.example.org.",))
            # not TXT: greet passes to whoami, which it runs before
            a = server.query("www.example.org.", "A")
            self.assertEqual(len(a.additional), 2)
            self.assertEqual(a.answer, [])

    def test_unknown_without_the_package(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            Path(d, "Corefile").write_text(". {\n greet\n}\n")
            out = run_cli(["-conf", str(Path(d, "Corefile"))])
        self.assertEqual(out.returncode, 1)
        self.assertIn("Unknown directive 'greet'", out.stderr)


