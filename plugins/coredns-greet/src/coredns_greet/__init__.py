"""greet: an example twisted-coredns plugin that lives in its own package.

``greet [ZONES...] { text TEXT; ttl SECONDS }`` answers TXT queries in its zones with TEXT, in which
``{name}`` and ``{remote}`` are replaced by the question's name and the client's address; every
other query goes on to the next plugin.
"""

from __future__ import annotations

from twisted_coredns import Controller, Handler, HandlerResult, Plugin, Request, Zones, records, reply
from twisted_coredns.dns import QNAME, TXT

DEFAULT_TEXT = "Hello, {remote}!"


class Greet(Handler):
    name = "greet"

    def __init__(self, zones: list[str], text: str, ttl: int) -> None:
        self.zones = Zones(zones)
        self.text = text
        self.ttl = ttl

    def serve(self, request: Request) -> HandlerResult:
        if request.qtype != TXT or not self.zones.covers(request.name):
            return self.serve_next(request)
        text = self.text.replace("{name}", request.qname).replace("{remote}", request.ip)
        return reply(request, answer=[records.txt(QNAME, self.ttl, text)], aa=True, plugin=self.name)


def setup(controller: Controller) -> Greet:
    directive = controller.once()
    text, ttl = DEFAULT_TEXT, 60
    for prop in directive.block or ():
        if prop.name == "text":
            text = controller.one_arg(prop)
        elif prop.name == "ttl":
            ttl = controller.uint_arg(prop)
        else:
            raise controller.unknown_property(prop)
    return Greet(controller.origins(directive.args), text, ttl)


plugin = Plugin("greet", setup, before="whoami", description="an example third-party plugin")
