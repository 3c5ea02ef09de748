"""Setup for ``hosts``: the Corefile syntax, CoreDNS's error texts, and the reload timer.

::

    hosts [FILE [ZONES...]] {
        [INLINE]
        ttl SECONDS
        no_reverse
        reload DURATION
        fallthrough [ZONES...]
        fallthrough_unsupported
    }

Lines of the block that are no property are hosts lines of their own (the INLINE part), but only
before ``fallthrough``: after it, CoreDNS calls them unknown properties.
"""

from __future__ import annotations

import os
import stat

from twisted.internet.task import LoopingCall

from ...address import host_zones
from ...clog import PluginLogger
from ...corefile.model import Token
from ...duration import parse_duration
from ...plugin import Controller
from ...strconv import atoi, go_quote
from .handler import Hosts

log = PluginLogger("hosts")

DEFAULT_PATH = "/etc/hosts"


def _check_path(controller: Controller, path: str, where: Token) -> None:
    """Warn, as CoreDNS does, when the named file is missing or a directory; fail when it cannot be
    looked at at all."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        log.warning(f"File does not exist: {path}")
        return
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise controller.err(where, f"unable to access hosts file '{path}': stat {path}: {reason}") from None
    if stat.S_ISDIR(st.st_mode):
        log.warning(f"Hosts file {go_quote(path)} is a directory")


def setup(controller: Controller) -> Hosts:
    directive = controller.once()
    path = DEFAULT_PATH
    args = list(directive.args)
    if args:
        path = args.pop(0).text
        root = controller.config.root
        if not os.path.isabs(path) and root:
            path = os.path.join(root, path)
        _check_path(controller, path, directive.last_token())
    origins = controller.origins(args)

    ttl = 3600
    auto_reverse = True
    reload = 5.0
    fall: list[str] | None = None
    fall_unsupported = False
    inline: list[str] = []

    # Caddy reads a block word by word: words left on a line by a property that takes none start
    # the next "line". Each item is a property token and the words after it on its line.
    pending: list[tuple[Token, list[Token]]] = [(p.token, list(p.args)) for p in directive.block or ()]
    props = {id(p.token): p for p in directive.block or ()}
    while pending:
        token, words = pending.pop(0)
        prop = props.get(id(token))
        if prop is not None and prop.block is not None and prop.open_brace is not None:
            raise controller.arg_error(prop.open_brace)
        last = words[-1] if words else token
        name = token.text
        values = [w.text for w in words]
        if name == "fallthrough":
            zones: list[str] = []
            for v in values or ["."]:
                zones.extend(host_zones(v))
            fall = zones
        elif name == "fallthrough_unsupported":
            if values:
                raise controller.arg_error(last)
            fall_unsupported = True
        elif name == "no_reverse":
            auto_reverse = False
            if words:
                pending.insert(0, (words[0], words[1:]))
        elif name == "ttl":
            if not values:
                raise controller.err(last, "ttl needs a time in second")
            try:
                seconds = atoi(values[0])
            except ValueError:
                raise controller.err(last, "ttl needs a number of second") from None
            if seconds <= 0 or seconds > 65535:
                raise controller.err(last, "ttl provided is invalid")
            ttl = seconds
        elif name == "reload":
            if len(values) != 1:
                raise controller.err(last, "reload needs a duration (zero seconds to disable)")
            try:
                reload = parse_duration(values[0])
            except ValueError:
                raise controller.err(last, f"invalid duration for reload '{values[0]}'") from None
            if reload < 0:
                raise controller.err(last, f"invalid negative duration for reload '{values[0]}'")
        elif not fall:
            inline.append(" ".join([name, *values]))
        else:
            raise controller.err(token, f"unknown property '{name}'")
    if fall_unsupported and not fall:
        end = directive.close_brace or directive.last_token()
        raise controller.err(end, "fallthrough_unsupported requires fallthrough")

    hosts = Hosts(
        path,
        origins,
        ttl=ttl,
        auto_reverse=auto_reverse,
        reload=reload,
        fall=fall or (),
        fall_unsupported=fall_unsupported,
        inline="\n".join(inline),
    )
    _schedule(controller, hosts)
    return hosts


def _schedule(controller: Controller, hosts: Hosts) -> None:
    """Read the file when the server starts, then every ``reload`` (unless it is zero)."""
    timer = LoopingCall(hosts.read_hosts)
    timer.clock = controller.reactor

    def start() -> None:
        hosts.read_hosts()
        if hosts.reload > 0:
            timer.start(hosts.reload, now=False)

    def stop() -> None:
        if timer.running:
            timer.stop()

    controller.on_startup(start)
    controller.on_shutdown(stop)

