"""Plain data produced by the Corefile parser.

The parser knows nothing about plugins or zones: it turns text into server blocks whose keys and
directives keep the file and line of every token, so that any later stage (address parsing, plugin
setup) can report an error at the right place, worded as CoreDNS words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Token:
    """One lexed word: its text after environment expansion, and where it started."""

    text: str
    file: str
    line: int


@dataclass(slots=True)
class Directive:
    """One directive line: ``name arg arg ... [{ nested lines }]``.

    ``block`` is ``None`` when the line had no ``{``; otherwise it holds the lines of the block, each
    itself a ``Directive`` (a property with its arguments and, possibly, a deeper block).
    ``open_brace`` and ``close_brace`` are the brace tokens when there is a block.
    """

    token: Token
    args: list[Token] = field(default_factory=list)
    block: list[Directive] | None = None
    open_brace: Token | None = None
    close_brace: Token | None = None

    @property
    def name(self) -> str:
        return self.token.text

    @property
    def line(self) -> int:
        return self.token.line

    @property
    def file(self) -> str:
        return self.token.file

    @property
    def values(self) -> list[str]:
        """The argument texts."""
        return [t.text for t in self.args]

    def last_token(self) -> Token:
        """The last token of the line before any block: what CoreDNS's ``c.Val()`` is after
        ``RemainingArgs()``."""
        return self.args[-1] if self.args else self.token


@dataclass(slots=True)
class ServerBlock:
    """A server block: its keys (addresses) and its top-level directives, in file order."""

    keys: list[Token]
    directives: list[Directive]

    @property
    def key_texts(self) -> list[str]:
        return [t.text for t in self.keys]

    def directives_named(self, name: str) -> list[Directive]:
        return [d for d in self.directives if d.name == name]
