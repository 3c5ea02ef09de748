"""What a plugin author writes against: the factory, the handler base class, the setup controller.

A plugin in a few dozen lines::

    # mypkg/hello.py
    from twisted_coredns.plugin import Handler
    from twisted_coredns.response import reply

    class Hello(Handler):
        name = "hello"
        def serve(self, request):
            if request.name != "hello.example.":
                return self.serve_next(request)
            return reply(request, aa=True)

    def setup(controller):
        for d in controller.directives:
            controller.no_args(d)
        return Hello()

    # twisted/plugins/mypkg_dropin.py  (no __init__.py in twisted/ or twisted/plugins/)
    from twisted_coredns.plugin import Plugin
    hello = Plugin("hello", "mypkg.hello.setup", after="whoami")

This module is imported by every dropin, so it imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.python.reflect import namedAny
from zope.interface import implementer

from .corefile.errors import CorefileError, arg_error, parse_error
from .corefile.model import Directive, Token
from .interfaces import IHandler, IPluginFactory

if TYPE_CHECKING:
    from .config import BlockConfig
    from .request import Request


def plugin_error(name: str, err: BaseException | str) -> CorefileError:
    """CoreDNS's ``plugin.Error``: ``plugin/NAME: MESSAGE``."""
    message = str(err)
    file = getattr(err, "file", None)
    line = getattr(err, "line", None)
    return CorefileError(f"plugin/{name}: {message}", file, line)


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
            from .response import Response

            return Response.not_written(2, plugin_error(self.name, "no next plugin found"), self.name)
        return nxt.serve(request)


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
