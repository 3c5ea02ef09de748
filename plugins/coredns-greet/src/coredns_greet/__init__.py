"""greet: an example twisted-coredns plugin that lives in its own package."""

from __future__ import annotations

import struct

from twisted_coredns import Controller, Handler, Plugin
from twisted_coredns.request import Request
from twisted_coredns.response import Response, reply
from twisted_coredns.rr import CLASS_IN, QNAME_POINTER, TXT, encode_rr

DEFAULT_TEXT = "Hello, {remote}!"


def _character_strings(text: bytes) -> bytes:
    # TXT rdata is a sequence of strings of at most 255 octets each.
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [b""]
    return b"".join(struct.pack("!B", len(c)) + c for c in chunks)


class Greet(Handler):
    name = "greet"

    def __init__(self, zones: list[str], text: str, ttl: int) -> None:
        self.zones = tuple(zones)
        self.text = text
        self.ttl = ttl

    def _covers(self, name: str) -> bool:
        return any(z == "." or name == z or name.endswith("." + z) for z in self.zones)

    def serve(self, request: Request) -> Response:
        if request.qtype != TXT or not self._covers(request.name):
            return self.serve_next(request)
        text = self.text.replace("{name}", request.qname).replace("{remote}", request.remote[0])
        record = encode_rr(QNAME_POINTER, TXT, CLASS_IN, self.ttl, _character_strings(text.encode()))
        return reply(request, answer=[record], aa=True, plugin=self.name)


def setup(controller: Controller) -> Greet:
    directive = controller.once()
    zones = controller.origins(directive.args)
    text, ttl = DEFAULT_TEXT, 60
    for prop in directive.block or ():
        if prop.name == "text":
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            text = prop.args[0].text
        elif prop.name == "ttl":
            if len(prop.args) != 1:
                raise controller.arg_error(prop)
            value = prop.args[0]
            if not value.text.isdigit():
                raise controller.err(value, f"ttl must be a number of seconds: {value.text}")
            ttl = int(value.text)
        else:
            raise controller.unknown_property(prop)
    return Greet(zones, text, ttl)


plugin = Plugin("greet", setup, before="whoami", description="an example third-party plugin")
