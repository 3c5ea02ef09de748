"""The plugin API for wrapping plugins: ``then``, ``Handler.serve_next_then``, ``Request.replace``,
and a setup that crashes shown as the plugin's bug, not as a Corefile error."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns import Handler, IHandler, Plugin, PluginBug, Request, Response, reply, then
from twisted_coredns.corefile import CorefileError
from twisted_coredns.dns import AD, CLASS_CH, RD, TXT
from twisted_coredns.instance import build
from twisted_coredns.registry import Registry, default_registry
from twisted_coredns.request import MalformedQuery
from twisted_coredns.testing import make_request
from twisted_coredns.testing.setup import run_setup


class _Fixed(Handler):
    """Returns what it was given: a Response, a Deferred, a coroutine, or raises."""

    name = "fixed"

    def __init__(self, result: Any) -> None:
        self.result = result

    def serve(self, request: Request) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        if callable(self.result):
            return self.result(request)
        return self.result


def _chain(result: Any) -> Handler:
    head = Handler()
    head.next = cast(IHandler, _Fixed(result))
    return head


class ThenTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.request = make_request("example.org.")
        self.response = reply(self.request, aa=True)

    def test_synchronous_result_makes_no_deferred(self) -> None:
        seen: list[Response] = []
        out = then(self.response, lambda r: seen.append(r) or r)
        self.assertIs(out, self.response)
        self.assertEqual(seen, [self.response])

    def test_deferred_result(self) -> None:
        d: Deferred[Response] = Deferred()
        out = then(d, lambda r: r.rcode + 100)
        self.assertIsInstance(out, Deferred)
        d.callback(self.response)
        self.assertEqual(self.successResultOf(out), 100)

    def test_coroutine_result(self) -> None:
        async def answer() -> Response:
            return self.response

        self.assertIs(self.successResultOf(then(answer(), lambda r: r)), self.response)

    def test_errback_gets_a_failed_deferred(self) -> None:
        out = then(fail(RuntimeError("down")), lambda r: r, lambda f: f.getErrorMessage())
        self.assertEqual(self.successResultOf(out), "down")

    def test_without_errback_the_failure_goes_on(self) -> None:
        self.failureResultOf(then(fail(RuntimeError("down")), lambda r: r), RuntimeError)


class ServeNextThenTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.request = make_request("example.org.")
        self.response = reply(self.request, aa=True)

    def test_each_way_the_chain_answers(self) -> None:
        async def coroutine(_request: Request) -> Response:
            return self.response

        for result in (self.response, succeed(self.response), coroutine):
            out = _chain(result).serve_next_then(self.request, lambda r: ("seen", r))
            if isinstance(out, Deferred):
                out = self.successResultOf(out)
            self.assertEqual(out, ("seen", self.response), result)

    def test_a_raise_goes_to_the_errback(self) -> None:
        failures: list[Failure] = []

        def errback(f: Failure) -> Response:
            failures.append(f)
            return Response.not_written(2, f.value)

        out = _chain(RuntimeError("boom")).serve_next_then(self.request, lambda r: r, errback)
        self.assertEqual(out.rcode, 2)
        self.assertEqual(str(failures[0].value), "boom")

    def test_a_raise_without_errback_propagates(self) -> None:
        with self.assertRaises(RuntimeError):
            _chain(RuntimeError("boom")).serve_next_then(self.request, lambda r: r)

    def test_an_errback_returning_the_failure_reraises(self) -> None:
        with self.assertRaises(RuntimeError):
            _chain(RuntimeError("boom")).serve_next_then(self.request, lambda r: r, lambda f: f)

    def test_an_async_handler_awaits_whatever_the_chain_returns(self) -> None:
        async def coroutine(_request: Request) -> Response:
            return self.response

        class Passes(Handler):
            async def serve(self, request: Request) -> Response:
                return await self.serve_next(request)

        for result in (self.response, succeed(self.response), coroutine):
            handler = Passes()
            handler.next = cast(IHandler, _Fixed(result))
            self.assertIs(self.successResultOf(then(handler.serve(self.request), lambda r: r)), self.response)

    def test_last_handler_gets_no_next_plugin(self) -> None:
        out = Handler().serve_next_then(self.request, lambda r: r)
        self.assertEqual(out.rcode, 2)
        self.assertIn("no next plugin found", str(out.error))


class RequestReplaceTests(SynchronousTestCase):
    def test_flags_are_written_into_the_wire(self) -> None:
        original = make_request("Example.org.", "AAAA", edns=0)
        copy = original.replace(flags=original.flags | AD)
        self.assertTrue(copy.flags & AD)
        self.assertEqual(Request(copy.wire).flags, copy.flags)
        self.assertFalse(original.flags & AD, "the original is untouched")
        self.assertEqual((copy.qname, copy.qtype, copy.edns), ("Example.org.", 28, True))
        self.assertEqual(copy.start, original.start)

    def test_flags_with_id_and_question_are_the_bytes_a_client_would_send(self) -> None:
        original = make_request("Example.org.", "AAAA", edns=0)
        copy = original.replace(flags=original.flags | AD, id=7, qname="other.example.")
        fresh = Request(copy.wire)
        self.assertEqual((fresh.id, fresh.flags, fresh.qname), (7, copy.flags, "other.example."))
        self.assertEqual((fresh.qtype, copy.qtype), (28, 28))
        self.assertEqual((fresh.udp_size, fresh.edns_version), (copy.udp_size, copy.edns_version))

    def test_a_new_opcode_is_checked_as_a_clients_would_be(self) -> None:
        original = make_request("example.org.")
        with self.assertRaises(MalformedQuery):
            original.replace(flags=original.flags | (5 << 11))  # UPDATE: not implemented
        self.assertEqual(original.replace(flags=original.flags | (4 << 11)).message.opcode(), 4)

    def test_new_question(self) -> None:
        original = make_request("www.example.org.", "A", edns=0)
        copy = original.replace(qname="WWW.example.net.", qtype=TXT, qclass=CLASS_CH)
        self.assertEqual((copy.qname, copy.name), ("WWW.example.net.", "www.example.net."))
        self.assertEqual((copy.qtype, copy.qclass), (TXT, CLASS_CH))
        self.assertEqual(copy.message.question[0].to_text(), "WWW.example.net. CH TXT")
        self.assertTrue(copy.edns, "the OPT record after the question is kept")
        self.assertEqual(copy.id, original.id)

    def test_transport_fields_and_metadata(self) -> None:
        original = make_request("example.org.")
        original.set_metadata("k", 1)
        shared = original.replace(proto="tcp")
        self.assertEqual((shared.proto, shared.wire, shared.get_metadata("k")), ("tcp", original.wire, 1))
        fresh = original.replace(flags=original.flags & ~RD, metadata=None)
        self.assertIsNone(fresh.get_metadata("k"))
        self.assertFalse(fresh.rd)

    def test_unknown_field(self) -> None:
        with self.assertRaises(TypeError):
            make_request("example.org.").replace(wire=b"")


def _buggy(controller: Any) -> Any:
    return len(controller)  # a TypeError: Controller has no len()


def _registry() -> Registry:
    reg = Registry(list(default_registry()))
    reg.add(Plugin("buggy", _buggy, before="whoami"), "tests")
    return reg


class SetupBugTests(SynchronousTestCase):
    def test_type_error_is_a_bug_not_a_corefile_error(self) -> None:
        with self.assertRaises(PluginBug) as caught:
            build(". {\n buggy\n}\n", registry=_registry(), dns_port=0)
        text = str(caught.exception)
        self.assertTrue(text.startswith("plugin/buggy: setup failed with TypeError: "), text)
        self.assertIn("a bug in the plugin", text)
        self.assertNotIn("Traceback", text)
        self.assertIsInstance(caught.exception.exception, TypeError)
        self.assertIn("_buggy", caught.exception.traceback)

    def test_debug_shows_the_traceback(self) -> None:
        with self.assertRaises(PluginBug) as caught:
            build(". {\n debug\n buggy\n}\n", registry=_registry(), dns_port=0)
        self.assertIn("Traceback (most recent call last)", str(caught.exception))
        self.assertIn("len(controller)", str(caught.exception))

    def test_run_setup_lets_bugs_through(self) -> None:
        with self.assertRaises(PluginBug):
            run_setup("buggy", registry=_registry())

    def test_value_errors_stay_corefile_errors(self) -> None:
        with self.assertRaises(CorefileError) as caught:
            build(". {\n loop\n loop\n}\n", dns_port=0)
        self.assertNotIsInstance(caught.exception, PluginBug)
