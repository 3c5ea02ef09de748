"""Reading ``dnstap`` lines, with CoreDNS's rules and error texts (plugin/dnstap/setup.go):

    dnstap SOCKET [full] [WRITEBUFFER] [QUEUE] { identity ID; version VER; extra EXTRA; skipverify }
    dnstap listen SOCKET [full] { ...; tls CERT KEY [CA]; skipverify }

SOCKET is ``unix:///path`` or a plain path, ``tcp://host:port``, or ``tls://host:port``. ``full``
must be the second argument to count; the third and fourth (both optional) multiply the socket's
send buffer (MiB, 1 to 1024) and the queue (10000 messages, 1 to 4096). Each ``dnstap`` line is a
tap of its own; one handler taps to all of them, in order.
"""

from __future__ import annotations

import socket

from ... import __version__
from ...corefile.model import Directive, Token
from ...plugin import Controller
from ...strconv import atoi, go_quote
from .handler import Dnstap, Tap
from .listener import Listener
from .output import QUEUE_SIZE, TCP_WRITE_BUFFER, Output

__all__ = ["DEFAULT_VERSION", "parse", "setup"]

DEFAULT_VERSION = f"twisted-coredns-{__version__}"
"""The ``version`` field without a ``version`` line (CoreDNS sends ``CoreDNS-<version>``)."""

MAX_WRITE_BUFFER = 1024
"""The largest ``writebuffer`` multiple, in MiB."""
MAX_QUEUE = 4096
"""The largest ``queue`` multiple, in units of 10000 messages."""

# What Go's url.Parse refuses in a host (besides a bad %-escape).
_BAD_HOST_CHARACTERS = frozenset(' "<>\\^`{|}') | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


def url_host(endpoint: str) -> str:
    """The host (with its port) of ``tcp://HOST:PORT`` or ``tls://...``, as Go's
    ``url.Parse(endpoint).Host`` gives it; ValueError where url.Parse fails."""
    rest = endpoint.partition("://")[2]
    for stop in "/?#":
        rest = rest.partition(stop)[0]
    host = rest.rpartition("@")[2]
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise ValueError("missing ']' in host")
        port = host[end + 1 :]
    else:
        colon = host.rfind(":")
        port = host[colon:] if colon >= 0 else ""
    if port and (not port.startswith(":") or (not port[1:].isdigit() and port != ":")):
        raise ValueError(f"invalid port {go_quote(port)} after host")
    if any(ch in _BAD_HOST_CHARACTERS for ch in host):
        raise ValueError("invalid character in host name")
    i = host.find("%")
    while i >= 0:
        escape = host[i + 1 : i + 3]
        if len(escape) != 2 or any(ch not in "0123456789abcdefABCDEF" for ch in escape):
            raise ValueError("invalid URL escape")
        i = host.find("%", i + 3)
    return host


def _multiple(controller: Controller, token: Token, what: str, upper: int, unit: str) -> int:
    try:
        value = atoi(token.text)
    except ValueError as exc:
        raise controller.err(token, f"dnstap: invalid {what} {go_quote(token.text)}: {exc}") from None
    if not 1 <= value <= upper:
        raise controller.err(token, f"dnstap: {what} must be between 1 and {upper} ({unit}): {value}")
    return value


def _one_arg(controller: Controller, prop: Directive) -> str:
    if not prop.args:
        raise controller.arg_error(prop.token)
    _no_more(controller, prop, 1)
    return prop.args[0].text


def _no_more(controller: Controller, prop: Directive, used: int) -> None:
    # caddy's block loop reads whatever follows the arguments a property took as the next
    # property: an extra word, or a '{'.
    if len(prop.args) > used:
        extra = prop.args[used]
        raise controller.err(extra, f"unknown property '{extra.text}'")
    if prop.block is not None and prop.open_brace is not None:
        raise controller.err(prop.open_brace, "unknown property '{'")


def _tap(controller: Controller, directive: Directive) -> Tap:
    args = directive.args
    if not args:
        raise controller.arg_error(directive)
    listen = args[0].text == "listen"
    if listen:
        if len(args) < 2:
            raise controller.err(args[0], "dnstap listen requires an endpoint argument")
        args = args[1:]
    endpoint = args[0].text

    write_buffer = queue = 1
    if len(args) >= 3:
        write_buffer = _multiple(controller, args[2], "MultipleTcpWriteBuf", MAX_WRITE_BUFFER, "MiB units")
    if len(args) >= 4:
        queue = _multiple(controller, args[3], "MultipleQueue", MAX_QUEUE, "x10k messages")

    if endpoint.startswith(("tls://", "tcp://")):
        network = endpoint[:3]
        try:
            address = url_host(endpoint)
        except ValueError:
            raise controller.arg_error(directive) from None
    else:
        network, address = "unix", endpoint.removeprefix("unix://")

    full = len(args) >= 2 and args[1].text == "full"
    identity = socket.gethostname().encode()
    version = DEFAULT_VERSION.encode()
    extra = ""
    skip_verify = False
    cert_file = key_file = ca_file = None
    for prop in directive.block or ():
        name = prop.name
        if name == "skipverify":
            _no_more(controller, prop, 0)
            skip_verify = True
        elif name == "tls":
            if not listen:
                raise controller.err(prop.token, "tls directive only valid for listeners")
            if len(prop.args) < 2:
                raise controller.err(prop.args[-1] if prop.args else prop.token,
                                     "tls requires cert and key file paths")
            _no_more(controller, prop, len(prop.args))
            cert_file, key_file = prop.args[0].text, prop.args[1].text
            if len(prop.args) >= 3:
                ca_file = prop.args[2].text
        elif name == "identity":
            identity = _one_arg(controller, prop).encode()
        elif name == "version":
            version = _one_arg(controller, prop).encode()
        elif name == "extra":
            extra = _one_arg(controller, prop)
        else:
            raise controller.unknown_property(prop)

    reactor = controller.reactor
    sink: Listener | Output
    if listen:
        sink = Listener(network, address, reactor, cert_file=cert_file, key_file=key_file, ca_file=ca_file,
                        skip_verify=skip_verify)
    else:
        sink = Output(network, address, reactor, queue_size=queue * QUEUE_SIZE,
                      write_buffer=write_buffer * TCP_WRITE_BUFFER, skip_verify=skip_verify)
    return Tap(sink, full=full, identity=identity, version=version, extra=extra)


def parse(controller: Controller) -> list[Tap]:
    """Every ``dnstap`` line of the block, set up, in order (CoreDNS's ``parseConfig``)."""
    return [_tap(controller, directive) for directive in controller.directives]


def setup(controller: Controller) -> Dnstap:
    handler = Dnstap(parse(controller))
    # CoreDNS connects (or listens) at startup and closes on restart and at the final shutdown;
    # our shutdown hook runs in both cases.
    controller.on_startup(handler.start)
    controller.on_shutdown(handler.stop)
    return handler
