"""Plugins run in plugin.cfg order; a third-party plugin names its place."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.order import PLUGIN_CFG, OrderError, plugin_order
from twisted_coredns.registry import default_registry


class OrderTests(SynchronousTestCase):
    def test_plugin_cfg_is_coredns_order(self) -> None:
        self.assertEqual(PLUGIN_CFG[:3], ("root", "metadata", "geoip"))
        for before, after in [("errors", "log"), ("log", "any"), ("cache", "forward"), ("forward", "whoami"),
                              ("multisocket", "bind"), ("loop", "forward")]:
            self.assertLess(PLUGIN_CFG.index(before), PLUGIN_CFG.index(after), (before, after))

    def test_extra_placed_before_and_after(self) -> None:
        order = plugin_order([("hello", ("after", "whoami")), ("early", ("before", "log"))])
        self.assertEqual(order.index("hello"), order.index("whoami") + 1)
        self.assertEqual(order.index("early"), order.index("log") - 1)

    def test_extras_after_the_same_anchor_keep_their_order(self) -> None:
        order = plugin_order([("a", ("after", "cache")), ("b", ("after", "cache"))])
        i = order.index("cache")
        self.assertEqual(order[i + 1 : i + 3], ["a", "b"])

    def test_extra_next_to_an_extra(self) -> None:
        order = plugin_order([("second", ("after", "first")), ("first", ("after", "whoami"))])
        self.assertEqual(order.index("second"), order.index("first") + 1)

    def test_unplaceable(self) -> None:
        with self.assertRaises(OrderError):
            plugin_order([("x", ("after", "nosuchplugin"))])

    def test_unordered_extra_goes_last(self) -> None:
        self.assertEqual(plugin_order([("tail", None)])[-1], "tail")

    def test_registry_order_follows_plugin_cfg(self) -> None:
        order = default_registry().order()
        for name in ("log", "whoami"):
            self.assertIn(name, order)
        self.assertLess(order.index("log"), order.index("whoami"))

    def test_corefile_order_does_not_matter(self) -> None:
        from twisted_coredns.instance import build

        inst = build(". {\n whoami\n log\n errors\n}\n", dns_port=0)
        self.assertEqual([h.name for h in inst.blocks[0].handlers], ["errors", "log", "whoami"])
