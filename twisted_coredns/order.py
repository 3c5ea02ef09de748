"""The order in which plugins run, whatever their order in the Corefile.

This is CoreDNS's plugin.cfg. A plugin that is not listed names its place next to one that is
(``order = ("after", "whoami")``): CoreDNS needs a rebuild for that, we do not.
"""

from __future__ import annotations

from collections.abc import Iterable

PLUGIN_CFG: tuple[str, ...] = (
    "root",
    "metadata",
    "geoip",
    "cancel",
    "proxyproto",
    "quic",
    "grpc_server",
    "https",
    "https3",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "shed",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "rewrite",
    "autopath",
    "acl",
    "cache",
    "header",
    "dnssec",
    "tls",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
)


class OrderError(ValueError):
    pass


def plugin_order(extra: Iterable[tuple[str, tuple[str, str] | None]]) -> list[str]:
    """plugin.cfg with the other plugins placed where they ask.

    ``extra`` is ``(name, order)`` for plugins outside plugin.cfg; ``order`` None puts a plugin
    last. Several placed after the same plugin keep the order they are given in; a plugin may be
    placed next to another extra one.
    """
    result = list(PLUGIN_CFG)
    placed_after: dict[str, list[str]] = {}
    pending = [(name, where) for name, where in extra if name not in PLUGIN_CFG]
    while pending:
        progressed = False
        for item in list(pending):
            name, where = item
            if where is None:
                result.append(name)
            else:
                side, anchor = where
                if side not in ("before", "after"):
                    raise OrderError(f"plugin {name}: order must be 'before' or 'after', not {side!r}")
                if anchor not in result:
                    continue
                at = result.index(anchor)
                if side == "after":
                    at += 1
                    while at < len(result) and result[at] in placed_after.get(anchor, ()):
                        at += 1
                    placed_after.setdefault(anchor, []).append(name)
                result.insert(at, name)
            pending.remove(item)
            progressed = True
        if not progressed:
            names = ", ".join(f"{n} ({w[0]} {w[1]})" for n, w in pending if w)
            raise OrderError(f"cannot place plugins next to unknown plugins: {names}")
    return result
