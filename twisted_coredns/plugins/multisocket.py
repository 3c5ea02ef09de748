"""multisocket: serve one listen address from N SO_REUSEPORT sockets (CoreDNS's plugin/multisocket).

The plugin only records the number in the block's config; it has no handler. The launcher reads
it per listen address (``ListenGroup.num_sockets``, the first block wins) and, because of the GIL,
turns N sockets into N worker processes (``twisted_coredns.launcher.master``).

The number is parsed as Go's ``strconv.Atoi`` parses it, errors included (``..strconv.atoi``):
Python's ``int()`` accepts spaces, underscores and non-ASCII digits and never overflows, which
would let through Corefiles that CoreDNS rejects.
"""

from __future__ import annotations

from ..plugin import Controller
from ..strconv import atoi

MAX_NUM_SOCKETS = 1024


def parse_num_sockets(controller: Controller) -> int:
    """The number of sockets the directive asks for, or a CorefileError worded as CoreDNS's."""
    from ..launcher.cpus import usable_cpus

    first = controller.directives[0]
    # CoreDNS reads the remaining arguments of the line, then fails if more than one, or if any
    # token follows them: a block, or the directive a second time in the same server block.
    if len(first.args) > 1:
        raise controller.arg_error(first)
    if first.open_brace is not None:
        raise controller.arg_error(first.open_brace)
    if len(controller.directives) > 1:
        raise controller.arg_error(controller.directives[1].token)
    if not first.args:
        return usable_cpus()
    token = first.args[0]
    try:
        num = atoi(token.text)
    except ValueError as exc:
        raise controller.err(token, f"invalid num sockets: {exc}") from None
    if num < 1:
        raise controller.err(token, f"num sockets can not be zero or negative: {num}")
    if num > MAX_NUM_SOCKETS:
        raise controller.err(token, f"num sockets exceeds maximum ({MAX_NUM_SOCKETS}): {num}")
    return num


def setup(controller: Controller) -> None:
    controller.config.num_sockets = parse_num_sockets(controller)
