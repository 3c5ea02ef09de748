"""Pieces shared by the plugins that are HTTP clients of an upstream (forward's DoH, etcd's v3
JSON gateway), on twisted.web's ``Agent``."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

__all__ = ["BytesBody"]


@implementer(IBodyProducer)
class BytesBody:
    """A request body already in memory, written in one go: ``FileBodyProducer`` would go through
    a cooperator and take a reactor turn per chunk, which a small DNS or JSON body does not need."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass
