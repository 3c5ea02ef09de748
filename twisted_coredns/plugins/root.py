"""root: the directory that relative file names in other plugins are read from (CoreDNS's
plugin/root).

The value goes to ``BlockConfig.root``; plugins that read files (file, tls, dnssec in CoreDNS)
join a relative name to it. A relative root is itself relative to the working directory.

The arguments are read exactly as caddy's dispenser reads them for CoreDNS: the tokens of every
``root`` line in the block, taken two by two (``root`` then its value), so the odd inputs fail
with CoreDNS's messages (``root a b`` complains after ``b``, a ``{`` becomes the value and the
line after it is the error). A path that does not exist only logs a warning, since the directory
may appear later; one that cannot be looked at for another reason is an error.
"""

from __future__ import annotations

import os

from ..clog import PluginLogger
from ..corefile.model import Directive, Token
from ..plugin import Controller

_log = PluginLogger("root")


def _tokens(directives: list[Directive]) -> list[Token]:
    """All tokens of the directives, braces and nested lines included, in file order: what
    CoreDNS's controller walks with ``Next``/``NextArg``."""
    out: list[Token] = []
    for d in directives:
        out.append(d.token)
        out.extend(d.args)
        if d.open_brace is not None:
            out.append(d.open_brace)
        if d.block:
            out.extend(_tokens(d.block))
        if d.close_brace is not None:
            out.append(d.close_brace)
    return out


def _go_stat_error(path: str, exc: OSError | ValueError) -> str:
    """The text of Go's ``*PathError`` for ``os.Stat``: ``stat PATH: not a directory``."""
    if isinstance(exc, ValueError):
        reason = "invalid argument"  # an embedded NUL: Go's syscall refuses it with EINVAL
    else:
        reason = exc.strerror or str(exc)
        reason = reason[:1].lower() + reason[1:]
    return f"stat {path}: {reason}"


def setup(controller: Controller) -> None:
    config = controller.config
    tokens = _tokens(controller.directives)
    i = 0
    while i < len(tokens):
        name = tokens[i]
        value = tokens[i + 1] if i + 1 < len(tokens) else None
        if value is None or value.file != name.file or value.line != name.line:
            raise controller.arg_error(name)
        config.root = value.text
        i += 2
    try:
        os.stat(config.root)
    except FileNotFoundError:
        # Allowed, because the directory may be created later; but say so.
        _log.warning(f"Root path does not exist: {config.root}")
    except (OSError, ValueError) as exc:
        raise controller.err(
            tokens[-1], f"unable to access root path '{config.root}': {_go_stat_error(config.root, exc)}"
        ) from None
