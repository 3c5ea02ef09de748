# ruff: noqa: E501 - the rows hold the error texts whole, one per line
"""on: commands run when a real server starts and stops, without blocking the reactor; setup
errors as caddy words them."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial import unittest

from twisted_coredns.testing import InProcessServer
from twisted_coredns.testing.setup import setup_error


def _script(directory: str, code: str) -> str:
    """A Python script file: the command line of ``on`` is split like a shell's, without quotes
    surviving the Corefile, so the code goes in a file."""
    path = os.path.join(directory, "hook.py")
    with open(path, "w") as f:
        f.write(code + "\n")
    return path


class OnTests(unittest.TestCase):
    @inlineCallbacks
    def test_startup_and_shutdown_commands_run(self) -> Any:
        marks = os.path.abspath(self.mktemp())
        os.makedirs(marks)
        start = os.path.join(marks, "started")
        stop = os.path.join(marks, "stopped")
        script = _script(marks, "import sys; open(sys.argv[1], 'w').write(sys.argv[2])")
        server = InProcessServer(
            ". {\n whoami\n"
            f" on startup {sys.executable} {script} {start} up\n"
            f" on shutdown {sys.executable} {script} {stop} down\n"
            "}"
        )
        yield server.start()
        # A blocking startup command has run once the server has started.
        self.assertEqual(open(start).read(), "up")
        reply = yield server.query("example.org.", "A")
        self.assertEqual(len(reply.additional), 2)
        self.assertFalse(os.path.exists(stop))
        yield server.stop()
        self.assertEqual(open(stop).read(), "down")

    @inlineCallbacks
    def test_background_command_does_not_hold_the_start(self) -> Any:
        marks = os.path.abspath(self.mktemp())
        os.makedirs(marks)
        done = os.path.join(marks, "done")
        script = _script(marks, "import sys, time; time.sleep(0.5); open(sys.argv[1], 'w').write('x')")
        server = InProcessServer(f". {{\n whoami\n on startup {sys.executable} {script} {done} &\n}}")
        yield server.start()
        self.addCleanup(server.stop)
        self.assertFalse(os.path.exists(done))  # started without waiting for it
        reply = yield server.query("example.org.", "A")
        self.assertEqual(len(reply.additional), 2)
        for _ in range(200):  # let it end before the test does
            if os.path.exists(done):
                break
            yield deferLater(reactor, 0.02, lambda: None)
        yield deferLater(reactor, 0.1, lambda: None)
        self.assertTrue(os.path.exists(done))

    @inlineCallbacks
    def test_a_missing_command_is_logged_and_the_server_starts(self) -> Any:
        from .small_plugin_support import captured_log

        with captured_log() as log:
            server = InProcessServer(". {\n whoami\n on startup no-such-command-here\n}")
            yield server.start()
            self.addCleanup(server.stop)
        self.assertIn('exec: "no-such-command-here": executable file not found in $PATH', log.getvalue())


class SetupTests(unittest.TestCase):
    def test_errors(self) -> None:
        rows = {
            "on": "plugin/on: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'on'",
            "on foo bar": "plugin/on: Corefile:2 - Error during parsing: Wrong event name or event not supported: 'foo'",
            "on startup": "plugin/on: Corefile:2 - Error during parsing: no command contained in ''",
        }
        for text, error in rows.items():
            self.assertEqual(setup_error(text), error, text)
        self.assertIsNone(setup_error("on certrenew echo renewed"))
        self.assertIsNone(setup_error("on STARTUP echo hi &"))
