"""What a plugin author writes against: the factory, the handler base class, the setup controller.

docs/plugin-api.md is the guide: a plugin in fifteen minutes, a wrapping plugin, an async one.

A ``Plugin`` names its setup function by dotted name, so that a dropin imports no plugin code
until a Corefile uses the plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from zope.interface import implementer

from .corefile.errors import CorefileError, arg_error, parse_error
from .corefile.model import Directive, Token
from .interfaces import IFront, IHandler, IPluginFactory
from .response import Response, then

if TYPE_CHECKING:
    from .config import BlockConfig
    from .request import Request


def plugin_error(name: str, err: BaseException | str) -> CorefileError:
    """CoreDNS's ``plugin.Error``: ``plugin/NAME: MESSAGE``."""
    message = str(err)
    file = getattr(err, "file", None)
    line = getattr(err, "line", None)
    return CorefileError(f"plugin/{name}: {message}", file, line)


class PluginBug(CorefileError):
    """A plugin's setup raised something that is not a verdict on the Corefile (a ``TypeError``,
    a ``KeyError``, ...): a bug in the plugin. It stops the start like a Corefile error, so a
    server never runs half set up, but says it is a bug, and carries the traceback, which is
    printed in ``debug`` mode."""

    def __init__(self, name: str, exc: BaseException, traceback: str, debug: bool = False) -> None:
        self.plugin = name
        self.exception = exc
        self.traceback = traceback
        self.debug = debug
        text = f"plugin/{name}: setup failed with {type(exc).__name__}: {exc} (a bug in the plugin)"
        if debug:
            text += "\n" + traceback.rstrip("\n")
        super().__init__(text)


@implementer(IPluginFactory)
class Plugin:
    """A directive name and its setup function (or the dotted name of one, imported on first use
    so that dropins stay cheap to import)."""

    def __init__(
        self,
        name: str,
        setup: Callable[[Controller], IHandler | None] | str,
        *,
        before: str | None = None,
        after: str | None = None,
        description: str = "",
    ) -> None:
        if before and after:
            raise ValueError("a plugin is placed either before or after another, not both")
        self.name = name
        self._setup = setup
        self.order: tuple[str, str] | None = None
        if before:
            self.order = ("before", before)
        elif after:
            self.order = ("after", after)
        self.description = description

    def setup(self, controller: Controller) -> IHandler | None:
        if isinstance(self._setup, str):
            try:
                self._setup = namedAny(self._setup)
            except (ImportError, AttributeError) as exc:
                # A broken or half-installed plugin package: say which, without a traceback.
                raise CorefileError(f"cannot load setup {self._setup}: {exc}") from None
        assert callable(self._setup)
        return self._setup(controller)

    @property
    def module(self) -> str:
        """Where the setup function lives (for ``-plugins`` listings and error messages)."""
        if isinstance(self._setup, str):
            return self._setup.rpartition(".")[0]
        return getattr(self._setup, "__module__", "?")

    def __repr__(self) -> str:
        return f"<Plugin {self.name} from {self.module}>"


@implementer(IHandler)
class Handler:
    """Base class for handlers: holds ``next`` and passes requests on."""

    name = "handler"
    next: IHandler | None = None

    def serve(self, request: Request) -> Any:
        return self.serve_next(request)

    def serve_next(self, request: Request) -> Any:
        """CoreDNS's ``plugin.NextOrFailure``: the next handler's answer, or SERVFAIL with
        ``no next plugin found`` when this is the last one."""
        nxt = self.next
        if nxt is None:
            return Response.not_written(2, plugin_error(self.name, "no next plugin found"), self.name)
        return nxt.serve(request)

    def serve_next_then(
        self,
        request: Request,
        callback: Callable[[Response], Any],
        errback: Callable[[Failure], Any] | None = None,
    ) -> Any:
        """Pass ``request`` on and act on the reply: ``callback(response)`` now if the chain
        answered synchronously, later if it returned a Deferred or a coroutine. What ``callback``
        returns is this handler's result, so it may return the response, a changed one, or another.

        ``errback(failure)``, if given, runs when the rest of the chain raised or its Deferred
        failed; what it returns is the result (a ``Response``), and returning the failure passes
        it on. Without it, failures go on to the server, which answers SERVFAIL."""
        try:
            result = self.serve_next(request)
        except Exception:
            if errback is None:
                raise
            out = errback(Failure())
            if isinstance(out, Failure):
                out.raiseException()
            return out
        return then(result, callback, errback)


class Controller:
    """What a plugin's setup sees: its directives in one server block, and that block's settings.

    ``directives`` holds every occurrence of the plugin's directive in the block, in file order
    (CoreDNS gives setup the joined tokens of all of them). ``config`` is the block's
    ``BlockConfig``: plugins such as ``bind`` and ``root`` change it.
    """

    def __init__(self, name: str, directives: list[Directive], config: BlockConfig, reactor: Any) -> None:
        self.name = name
        self.directives = directives
        self.config = config
        self.reactor = reactor

    @property
    def zones(self) -> list[str]:
        """The zones of the server block's keys."""
        return self.config.zones

    # -- errors, worded as caddy's dispenser words them -----------------------------------------

    def err(self, where: Token | Directive, message: str) -> CorefileError:
        token = where.token if isinstance(where, Directive) else where
        return parse_error(token, message)

    def arg_error(self, where: Token | Directive) -> CorefileError:
        """``Wrong argument count or unexpected line ending after 'X'`` (or the '{' variant)."""
        token = where.last_token() if isinstance(where, Directive) else where
        return arg_error(token)

    def unknown_property(self, prop: Directive) -> CorefileError:
        return parse_error(prop.token, f"unknown property '{prop.name}'")

    # -- common checks --------------------------------------------------------------------------

    def no_args(self, directive: Directive) -> None:
        """The directive takes no arguments and no block (``whoami``, ``any``)."""
        if directive.args:
            raise arg_error(directive.args[0])
        if directive.block is not None and directive.open_brace is not None:
            raise arg_error(directive.open_brace)

    def no_block(self, directive: Directive) -> None:
        if directive.block is not None and directive.open_brace is not None:
            raise arg_error(directive.open_brace)

    def one_arg(self, directive: Directive) -> str:
        """The directive's single argument (``text "hi"``), or CoreDNS's argument error."""
        if len(directive.args) != 1:
            raise self.arg_error(directive)
        return directive.args[0].text

    def uint_arg(self, directive: Directive, bits: int = 32) -> int:
        """The directive's single argument as an unsigned number (Go's ``strconv.ParseUint``, with
        its error text and the argument's line)."""
        from .strconv import parse_uint

        text = self.one_arg(directive)
        try:
            return parse_uint(text, bits)
        except ValueError as exc:
            raise self.err(directive.args[0], str(exc)) from None

    def host_port_arg(self, directive: Directive, default: str) -> str:
        """The directive's optional ``HOST:PORT`` argument (``health``, ``ready``,
        ``prometheus``), or ``default``: more than one argument is CoreDNS's argument error, and
        the address is checked as Go's ``net.SplitHostPort`` checks it, with its error text."""
        from .server.http import split_host_port

        if len(directive.args) > 1:
            raise self.arg_error(directive)
        if not directive.args:
            return default
        address = directive.args[0].text
        try:
            split_host_port(address)
        except ValueError as exc:
            raise CorefileError(str(exc)) from None
        return address

    def once(self) -> Directive:
        """The directive may appear once per block; CoreDNS's ``plugin.ErrOnce``."""
        if len(self.directives) > 1:
            raise CorefileError("this plugin can only be used once per Server Block",
                                self.directives[1].file, self.directives[1].line)
        return self.directives[0]

    def origins(self, args: list[Token]) -> list[str]:
        """CoreDNS's ``OriginsFromArgsOrServerBlock``: the zones named in ``args`` (normalized,
        CIDRs expanded to reverse zones), or the block's zones when there are none."""
        if not args:
            return list(self.zones)
        from .address import AddressError, parse_zone_address

        zones: list[str] = []
        for tok in args:
            try:
                zones.extend(z.zone for z in parse_zone_address(tok.text))
            except AddressError as exc:
                raise parse_error(tok, str(exc)) from None
        return zones

    # -- lifecycle ------------------------------------------------------------------------------

    def on_startup(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when the servers start (it may return a Deferred)."""
        self.config.startup.append(fn)

    def on_shutdown(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when the servers stop (it may return a Deferred)."""
        self.config.shutdown.append(fn)

    def on_process_start(self, fn: Callable[[IFront], Any]) -> None:
        """Run ``fn(front)`` in the process that owns the listeners (the only process, or the
        multisocket master, never a worker) when this Corefile starts serving there: at start and
        after the reload that brought it in. For what exists once per process, not once per
        worker: an HTTP endpoint, a file watcher. It may return a Deferred; an error stops the
        start (or fails the reload)."""
        self.config.process_start.append(fn)

    def on_process_stop(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in that process when this Corefile stops serving there (a reload replaced
        it, or the server stops)."""
        self.config.process_stop.append(fn)

    def on_final_shutdown(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in that process when the server is told to stop, before the DNS listeners
        close (CoreDNS's OnFinalShutdown: ``health``'s lameduck waits here)."""
        self.config.final_shutdown.append(fn)
