"""``tls CERT KEY [CA] { client_auth MODE; keylog FILE }``: parsed and checked at setup.

Every file is loaded now (``TLSSettings.check``), so a certificate that is missing, unreadable or
does not match its key stops the start with CoreDNS's error, before anything is bound. ACME
(``tls`` without arguments) needs a public certificate authority, which this server never talks
to: it is a Corefile error here.
"""

from __future__ import annotations

import os

from ...clog import PluginLogger
from ...corefile.model import Directive
from ...plugin import Controller, plugin_error
from ...server.tlsconfig import TLSError, TLSSettings

_log = PluginLogger("tls")

# Go's tls.ClientAuthType names, as CoreDNS's client_auth spells them.
_CLIENT_AUTH = ("nocert", "request", "require", "verify_if_given", "require_and_verify")


def _rooted(path: str, root: str) -> str:
    return os.path.join(root, path) if root and not os.path.isabs(path) else path


def _parse(controller: Controller, directive: Directive) -> TLSSettings:
    args = [a.text for a in directive.args]
    root = controller.config.root
    if not args:
        raise controller.err(
            directive, "ACME certificates (tls without CERT and KEY) are not supported by twisted-coredns"
        )
    if len(args) < 2 or len(args) > 3:
        raise plugin_error("tls", controller.arg_error(directive))
    client_auth = "nocert"
    keylog: str | None = None
    for prop in directive.block or []:
        if prop.name == "client_auth":
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            value = prop.args[0].text
            if value not in _CLIENT_AUTH:
                raise controller.err(prop.args[0], f"unknown authentication type '{value}'")
            client_auth = value
        elif prop.name == "keylog":
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            keylog = os.path.abspath(_rooted(prop.args[0].text, root))
            try:
                # Opened now, as CoreDNS does, so an unwritable path is a Corefile error.
                fd = os.open(keylog, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.close(fd)
            except OSError as exc:
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                message = f'unable to write TLS Key Log to "{keylog}": open {keylog}: {reason}'
                raise controller.err(prop.args[0], message) from None
        else:
            raise controller.err(prop.token, f"unknown option '{prop.name}'")
    paths = [_rooted(a, root) for a in args]
    settings = TLSSettings(paths[0], paths[1], paths[2] if len(paths) == 3 else None, client_auth, keylog)
    try:
        settings.check()
    except TLSError as exc:
        raise ValueError(str(exc)) from None
    if keylog:
        _log.warning(f'Writing TLS Key Log to "{keylog}"')
    return settings


def setup(controller: Controller) -> None:
    for directive in controller.directives:
        # A later tls line replaces an earlier one, as CoreDNS's loop over them does.
        controller.config.settings["tls"] = _parse(controller, directive)
