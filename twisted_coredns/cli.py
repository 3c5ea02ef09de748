"""``twisted-coredns``: the ``coredns`` command line.

Same flags as CoreDNS (``-conf``, ``-dns.port``/``-p``, ``-plugins``, ``-version``, ``-quiet``,
``-pidfile``), same behaviour: a bad Corefile prints CoreDNS's message and exits 1, no traceback.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from . import __version__


def version_text() -> str:
    import twisted

    return (
        f"twisted-coredns-{__version__}\n"
        f"{sys.platform}/{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, Twisted {twisted.__version__}"
    )


def plugins_text() -> str:
    """What ``coredns -plugins`` prints, with our plugins under ``dns.``."""
    from .registry import default_registry

    names = sorted(f"dns.{r.name}" for r in default_registry())
    lines = ["Server types:", "  dns", "", "Caddyfile loaders:", "  flag", "  default", "", "Other plugins:"]
    lines += [f"  {n}" for n in names]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .corefile import CorefileError
    from .options import USAGE, UsageError, parse_args

    argv = sys.argv[1:] if argv is None else argv
    try:
        opts = parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n{USAGE}")
        return 2
    if opts.help:
        sys.stdout.write(USAGE)
        return 0
    if opts.version:
        print(version_text())
        return 0
    if opts.plugins:
        print(plugins_text())
        return 0

    from .instance import build, read_corefile
    from .launcher import start_logging
    from .server.limits import raise_fd_limit, tune_gc

    # Before any socket, and before the fork server and the workers inherit them: Go's file limit
    # and a collector that does not stall the queries (server/limits.py).
    raise_fd_limit()
    tune_gc()

    try:
        text, filename = read_corefile(opts.conf)
    except OSError as exc:
        sys.stderr.write(f"open {opts.conf}: {(exc.strerror or str(exc)).lower()}\n")
        return 1
    forkserver = _fork_server_for(text, filename)
    start_logging()
    try:
        instance = build(text, filename, dns_port=opts.dns_port)
    except CorefileError as exc:
        sys.stderr.write(f"{exc}\n")
        if forkserver is not None:
            forkserver.stop()
        return 1
    from .launcher.master import run_master

    return run_master(
        instance, conf=opts.conf, dns_port=opts.dns_port, quiet=opts.quiet, pidfile=opts.pidfile,
        forkserver=forkserver,
    )


def _asks_for_workers(directive: Any) -> bool:
    """``multisocket`` with more than one socket (its default is the usable CPUs)."""
    if directive.name != "multisocket":
        return False
    if not directive.args:
        from .launcher.cpus import usable_cpus

        return usable_cpus() > 1
    text = directive.args[0].text
    return not (text.isdigit() and int(text) <= 1)


def _fork_server_for(text: str, filename: str) -> Any:
    """With ``multisocket`` in the Corefile: import what workers need and fork the fork server
    now, before the reactor exists, so that this process, the fork server and every worker share
    those pages (launcher/forkserver.py). Without it, nothing: a single process pays nothing."""
    from typing import cast

    from twisted.logger import ILogObserver, Logger

    from .corefile import CorefileError, parse, parser

    # A look at the directives only: what parsing warns about (an import glob that matches
    # nothing) is said once, by build(), as CoreDNS parses once.
    said, parser._log = parser._log, Logger(
        namespace=parser._log.namespace, observer=cast(ILogObserver, lambda _event: None)
    )
    try:
        blocks = parse(text, filename)
    except CorefileError:
        return None  # build() reports it
    finally:
        parser._log = said
    if not any(_asks_for_workers(d) for b in blocks for d in b.directives):
        return None
    from .launcher import forkserver

    forkserver.prepare()
    return forkserver.fork_early()


if __name__ == "__main__":
    sys.exit(main())
