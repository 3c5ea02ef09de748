"""Run one directive's setup from Corefile text: CoreDNS's ``caddy.NewTestController``.

A setup test in CoreDNS reads ``c := caddy.NewTestController("dns", input); err := setup(c)``. Here
it reads ``result = run_setup("greet example.org {\\n text hi\\n}")``: the text becomes the body
of a server block (``.`` unless ``keys`` says otherwise), every plugin in it is set up exactly as
the server would set it up, and the result holds the handler the directive made, the block's
settings, or the error, worded as CoreDNS words it (``plugin/greet: Corefile:3 - Error during
parsing: ...``). Nothing listens.

CoreDNS's setup tests are tables of rows (an input, whether it must fail, often a piece of the
error text); ``check_setup_rows`` runs such a table, ``load_setup_rows`` reads one from JSON.
"""

from __future__ import annotations

import json
import os
import textwrap
import unittest
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import BlockConfig
from ..corefile import CorefileError
from ..instance import Instance, build
from ..interfaces import IHandler
from ..registry import Registry

__all__ = ["SetupResult", "check_setup_rows", "load_setup_rows", "run_setup", "setup_error"]


@dataclass
class SetupResult:
    """What setting up a directive gave: its handler (None for a plugin that only configures the
    block, such as ``root``), the block's config, the whole instance; or the error."""

    error: CorefileError | None
    instance: Instance | None = None
    handler: IHandler | None = None

    @property
    def config(self) -> BlockConfig:
        if self.instance is None:
            raise AssertionError(f"setup failed: {self.error}")
        return self.instance.blocks[0]

    @property
    def message(self) -> str | None:
        """The error text, as the ``twisted-coredns`` command prints it, or None."""
        return None if self.error is None else str(self.error)

    def __bool__(self) -> bool:
        return self.error is None


def _handler_of(instance: Instance, name: str) -> IHandler | None:
    for handler in instance.blocks[0].handlers:
        if getattr(handler, "name", None) == name:
            return handler
    return None


def run_setup(
    text: str,
    *,
    keys: str = ".",
    registry: Registry | None = None,
    reactor: Any = None,
    filename: str = "Corefile",
    env: dict[str, str] | None = None,
) -> SetupResult:
    """Set up ``text`` (one or more directive lines) inside ``keys { ... }``.

    The directive's handler is the first handler named as the first directive of ``text``. A
    ``CorefileError`` (CoreDNS's error, with file and line) is returned in the result, not raised;
    anything else a setup raises is a bug and propagates (``PluginBug``)."""
    body = text.strip("\n")
    name = body.split(None, 1)[0] if body.strip() else ""
    corefile = f"{keys} {{\n{body}\n}}\n"
    try:
        instance = build(corefile, filename, registry=registry, reactor=reactor, env=env, dns_port=0)
    except CorefileError as exc:
        from ..plugin import PluginBug

        if isinstance(exc, PluginBug):
            raise
        return SetupResult(exc)
    return SetupResult(None, instance, _handler_of(instance, name))


def setup_error(text: str, **kw: Any) -> str | None:
    """The error text setting ``text`` up gives, or None when it sets up."""
    return run_setup(text, **kw).message


Row = Mapping[str, Any]
"""One setup row: ``input`` (the directive lines), ``expect_error`` (a bool) and optionally
``error`` (the whole error text), ``error_contains`` (a piece of it, as CoreDNS's
``expectedErrContent`` gives it), ``known_difference`` (why our text differs from CoreDNS's), and
whatever else a ``check`` wants to read."""


def load_setup_rows(
    path: str | os.PathLike[str], plugin: str | None = None, *, source_contains: str | None = None
) -> list[dict[str, Any]]:
    """The rows of a JSON file of setup rows.

    The file holds a list of rows, or an object with the list under ``"rows"``, or, when ``plugin``
    is given, under that plugin's name (one file for several plugins). With ``source_contains``
    the object's attribution (its ``"source"``, ``"_source"`` or ``"attribution"`` value) must
    contain that text: where the rows were ported from. No rows at all is an error."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if source_contains is not None:
        fields = ("source", "_source", "attribution")
        attributions = [data.get(key) for key in fields] if isinstance(data, dict) else []
        if not any(isinstance(a, str) and source_contains in a for a in attributions):
            raise ValueError(f"{os.fspath(path)}: no attribution containing {source_contains!r}")
    key = "rows" if plugin is None else plugin
    rows = data.get(key) if isinstance(data, dict) else (data if plugin is None else None)
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{os.fspath(path)}: no setup rows" + (f" for {plugin!r}" if plugin else ""))
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{os.fspath(path)}: a setup row is not an object")
    return rows


def check_setup_rows(
    case: unittest.TestCase,
    rows: Iterable[Row],
    *,
    registry: Registry | None = None,
    check: Callable[[Row, SetupResult], object] | None = None,
    text: Callable[[Row], str] | None = None,
    error_prefix: str | None = None,
    keys: str = ".",
    reactor: Any = None,
    filename: str = "Corefile",
    env: dict[str, str] | None = None,
) -> int:
    """Set every row up with ``run_setup`` and check it as CoreDNS's setup test does; return how
    many rows were checked.

    Each row must fail (``"expect_error": true``) or set up (``false``). When it fails, its error
    text (``SetupResult.message``, as the ``twisted-coredns`` command prints it) must equal the
    row's ``"error"`` and contain its ``"error_contains"``, where the row has them, and start with
    ``error_prefix`` when one is given (``"plugin/NAME: "``). ``"error"`` is the whole text, file
    and line included: with the defaults the row's first line is ``Corefile:2``. A row with
    ``"known_difference"`` (a note on why) has an error text that we know differs from CoreDNS's:
    its text is not checked against ``error_prefix``, and must *not* match the row's ``"error"`` /
    ``"error_contains"`` (when it does, the marker is stale and the row fails, asking for it to be
    dropped). When a row sets up, ``check(row, result)`` makes the plugin's own assertions on it.

    ``text(row)`` gives the Corefile text to set up (by default ``row["input"]``; use it to fill in
    a row's templated parts, such as a temporary path). ``registry``, ``keys``, ``reactor``,
    ``filename`` and ``env`` go to ``run_setup``.

    Each row runs inside ``case.subTest(row=index, input=text)``. Where the runner reports subtests
    (unittest's), each failing row is reported there; where ``subTest`` only passes through
    (twisted.trial's runner, also under pytest), the failures of all rows are collected and the
    test fails once, listing every one. An exception other than an assertion (a ``PluginBug``, a
    ``check`` that crashes) propagates at once, with the row noted on it."""
    rows = list(rows)
    if not rows:
        case.fail("no setup rows to check")
    failures: list[str] = []
    for index, row in enumerate(rows):
        corefile_text = row["input"] if text is None else text(row)
        test_func = f" ({row['test_func']})" if "test_func" in row else ""
        where = f"row {index}{test_func}: {corefile_text!r}"
        try:
            with case.subTest(row=index, input=corefile_text):
                result = run_setup(
                    corefile_text, keys=keys, registry=registry, reactor=reactor, filename=filename, env=env
                )
                _check_row(case, row, result, check, error_prefix)
        except AssertionError as exc:  # also trial's FailTest
            failures.append(f"  {where}\n" + textwrap.indent(str(exc), "      "))
        except Exception as exc:
            exc.add_note(f"in setup {where}")
            raise
    if failures:
        case.fail(f"{len(failures)} of {len(rows)} setup rows failed:\n" + "\n".join(failures))
    return len(rows)


def _check_row(
    case: unittest.TestCase,
    row: Row,
    result: SetupResult,
    check: Callable[[Row, SetupResult], object] | None,
    error_prefix: str | None,
) -> None:
    expect_error = row.get("expect_error")
    if not isinstance(expect_error, bool):
        case.fail(f"the row has no true/false expect_error: {expect_error!r}")
    exact: str | None = row.get("error") or None
    contains: str | None = row.get("error_contains") or None
    known: str | None = row.get("known_difference")
    if not expect_error and (exact or contains or known):
        case.fail("the row expects no error but gives an error text or a known_difference")
    if known is not None and (not isinstance(known, str) or not known or not (exact or contains)):
        case.fail("known_difference must be a note, on a row with error or error_contains")
    message = result.message
    if message is None:
        if expect_error:
            case.fail("sets up, but CoreDNS rejects it")
        if check is not None:
            check(row, result)
        return
    if not expect_error:
        case.fail(f"fails, but CoreDNS sets it up: {message}")
    wrong = []
    if exact is not None and message != exact:
        wrong.append(f"error\n  {message!r}\nis not\n  {exact!r}")
    if contains is not None and contains not in message:
        wrong.append(f"error\n  {message!r}\ndoes not contain\n  {contains!r}")
    if known is not None:
        if not wrong:
            case.fail(f"error {message!r} now matches CoreDNS's: drop the row's known_difference ({known})")
        return
    if error_prefix is not None and not message.startswith(error_prefix):
        wrong.append(f"error\n  {message!r}\ndoes not start with {error_prefix!r}")
    if wrong:
        case.fail("\n".join(wrong))
