"""CoreDNS's command-line flags, parsed the way Go's ``flag`` package parses them.

``-conf FILE``, ``--conf FILE``, ``-conf=FILE`` are all accepted; boolean flags take no value
(``-quiet``) or ``=true/false``. Errors are worded as Go words them.
"""

from __future__ import annotations

from dataclasses import dataclass


class UsageError(Exception):
    pass


@dataclass
class Options:
    conf: str | None = None
    dns_port: int = 53
    plugins: bool = False
    version: bool = False
    quiet: bool = False
    pidfile: str = ""
    help: bool = False


_STRING_FLAGS = {"conf", "dns.port", "p", "pidfile"}
_BOOL_FLAGS = {"plugins", "version", "quiet", "h", "help"}

USAGE = """Usage of twisted-coredns:
  -conf string
    \tCorefile to load (default "Corefile")
  -dns.port string
    \tDefault port (default "53")
  -p string
    \tDefault port (default "53")
  -pidfile string
    \tPath to write pid file
  -plugins
    \tList installed plugins
  -quiet
    \tQuiet mode (no initialization output)
  -version
    \tShow version
"""


def parse_args(argv: list[str]) -> Options:
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            raise UsageError(f"unexpected argument: {arg}")
        name = arg.lstrip("-")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name in _BOOL_FLAGS:
            flag = True
            if value is not None:
                if value.lower() in ("1", "t", "true"):
                    flag = True
                elif value.lower() in ("0", "f", "false"):
                    flag = False
                else:
                    raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
            if name in ("h", "help"):
                opts.help = True
            else:
                setattr(opts, name, flag)
            continue
        if name not in _STRING_FLAGS:
            raise UsageError(f"flag provided but not defined: -{name}")
        if value is None:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if name == "conf":
            opts.conf = value
        elif name == "pidfile":
            opts.pidfile = value
        else:
            if not value.isdigit() or not 0 <= int(value) <= 65535:
                raise UsageError(f'invalid port "{value}" for -{name}')
            opts.dns_port = int(value)
    return opts
