"""``twistd coredns``: the same server under twistd's runner (daemonizing, pidfile, logfile, -u/-g).

The Corefile is parsed and every plugin set up in ``makeService``, so a bad Corefile stops twistd
before it daemonizes, with CoreDNS's message. Sockets are bound in ``privilegedStartService``,
before twistd drops privileges.
"""

from __future__ import annotations

from typing import Any

from twisted.python import usage


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Serve DNS from a CoreDNS Corefile."
    optParameters = [
        ["conf", "c", None, "Corefile to load (default: ./Corefile, else the built-in default)"],
        ["dns.port", "p", "53", "Default port for dns:// server blocks without one"],
    ]
    optFlags = [["quiet", "q", "Quiet mode (no initialization output)"]]

    def postOptions(self) -> None:
        port = self["dns.port"]
        if not str(port).isdigit() or not 0 <= int(port) <= 65535:
            raise usage.UsageError(f'invalid port "{port}"')
        self["dns.port"] = int(port)


def makeService(options: Options) -> Any:
    from .corefile import CorefileError
    from .instance import build, read_corefile
    from .server.limits import raise_fd_limit, tune_gc

    raise_fd_limit()
    tune_gc()

    try:
        text, filename = read_corefile(options["conf"])
        instance = build(text, filename, dns_port=options["dns.port"])
    except OSError as exc:
        raise SystemExit(f"open {options['conf']}: {(exc.strerror or str(exc)).lower()}") from None
    except CorefileError as exc:
        raise SystemExit(str(exc)) from None
    from .launcher.master import MasterService

    # The front process: it serves here, or (multisocket) is the master of the workers and the
    # pidfile holds its pid. Either way it owns the sockets, so a reload may switch between them.
    return MasterService(instance, conf=options["conf"], dns_port=options["dns.port"], quiet=options["quiet"])
