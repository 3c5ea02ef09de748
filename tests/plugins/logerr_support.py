"""Test pieces shared by the log and errors tests: a plugin that gives every kind of reply (and of
failure) by the first label of the query name, a registry that holds it, and a capture of the log
events these plugins emit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.rrset
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.plugin import Controller, Handler, Plugin
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.request import Request
from twisted_coredns.response import Response, reply

DATA = Path(__file__).resolve().parent.parent / "data"

TIMEOUT_ERROR = "read udp 127.0.0.1:40000->127.0.0.1:53: i/o timeout"
FAILED_ERROR = "Failed to connect to upstream"


def _soa(zone: str) -> Any:
    return dns.rrset.from_text(zone, 300, "IN", "SOA", f"ns.{zone} admin.{zone} 1 7200 3600 1209600 300")


def _a(owner: str) -> Any:
    return dns.rrset.from_text(owner, 60, "IN", "A", "192.0.2.1")


class Answers(Handler):
    """Replies chosen by the first label of the name:

    ``nxdomain`` NXDOMAIN with an SOA, ``nodata`` NOERROR with only an SOA, ``deleg`` a referral,
    ``servfail`` a not-written SERVFAIL (error "backend unreachable"), ``refused`` a not-written
    REFUSED, ``crash`` raises, ``slow`` answers later, ``slowcrash`` fails later, ``timeout`` and
    ``failed`` are not-written SERVFAILs with an upstream-like error, ``notauth`` is a written
    NOTAUTH reply that also reports an error, ``meta`` sets metadata ``test/key``; anything else is
    an A record.
    """

    name = "answers"

    def serve(self, request: Request) -> Any:
        label = request.name.split(".", 1)[0]
        zone = request.name.split(".", 1)[1] if "." in request.name[:-1] else "."
        if label == "nxdomain":
            return reply(request, 3, authority=[_soa(zone)], aa=True, plugin=self.name)
        if label == "nodata":
            return reply(request, 0, authority=[_soa(zone)], aa=True, plugin=self.name)
        if label == "deleg":
            ns = dns.rrset.from_text(request.qname, 300, "IN", "NS", f"ns.{request.qname}")
            return reply(request, 0, authority=[ns], plugin=self.name)
        if label == "servfail":
            return Response.not_written(2, "backend unreachable", self.name)
        if label == "refused":
            return Response.not_written(5, None, self.name)
        if label == "crash":
            raise RuntimeError("handler exploded")
        if label == "timeout":
            return Response.not_written(2, TIMEOUT_ERROR, self.name)
        if label == "failed":
            return Response.not_written(2, FAILED_ERROR, self.name)
        if label == "notauth":
            return reply(request, 9, error="test error", plugin=self.name)
        if label == "slow":
            return deferLater(reactor, 0.01, lambda: reply(request, answer=[_a(request.qname)], aa=True))
        if label == "slowcrash":
            return self._later_crash()
        if label == "meta":
            request.set_metadata("test/key", "value")
            request.set_metadata("test/func", lambda: "computed")
        return reply(request, answer=[_a(request.qname)], aa=True, plugin=self.name)

    def _later_crash(self) -> Deferred[Response]:
        def boom() -> Response:
            raise ValueError("late failure")

        return deferLater(reactor, 0.01, boom)


def _setup_answers(controller: Controller) -> Any:
    for d in controller.directives:
        controller.no_args(d)
    return Answers()


def answers_registry() -> Registry:
    """The installed plugins plus ``answers`` (placed where whoami is: after log and errors)."""
    reg = Registry(list(default_registry()))
    reg.add(Plugin("answers", _setup_answers, before="whoami"), "tests")
    return reg


class LogCapture:
    """Events of one plugin's logger (``coredns.plugin.NAME``) as (level name, text) pairs."""

    LEVELS = {
        LogLevel.debug: "DEBUG",
        LogLevel.info: "INFO",
        LogLevel.warn: "WARNING",
        LogLevel.error: "ERROR",
        LogLevel.critical: "FATAL",
    }

    def __init__(self, case: SynchronousTestCase, plugin: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.plugin = plugin
        observer: Any = self.events.append
        globalLogPublisher.addObserver(observer)
        case.addCleanup(globalLogPublisher.removeObserver, observer)

    def lines(self, plugin: str | None = None) -> list[tuple[str, str]]:
        wanted = plugin or self.plugin
        out = []
        for event in self.events:
            namespace = event.get("log_namespace", "")
            if wanted and namespace != f"coredns.plugin.{wanted}":
                continue
            text = event.get("coredns_text")
            if text is None:
                text = formatEvent(event)
            out.append((self.LEVELS.get(event.get("log_level"), "?"), text))
        return out

    def texts(self, plugin: str | None = None) -> list[str]:
        return [text for _level, text in self.lines(plugin)]

    def all_texts(self) -> list[str]:
        """Every event's text, whatever logged it."""
        return [event.get("coredns_text") or formatEvent(event) or "" for event in self.events]

    def clear(self) -> None:
        del self.events[:]
