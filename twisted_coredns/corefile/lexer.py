"""Split Corefile text into words, the way coredns/caddy's lexer does.

A Corefile must mean the same thing here as in CoreDNS, so this lexer keeps caddy's rules even where
they surprise: words are split on whitespace only (``foo{`` is one word), a ``"`` opens a quoted word
only at the start of a word, ``\\"`` is the only escape, and a ``#`` glued to a word hides the rest of
that word only (``hosts#x y`` gives ``hosts`` and ``y``), while a ``#`` that starts a word hides the
rest of the line; a carriage return is dropped wherever it is outside quotes, even inside a word.

The parser needs more than the words: it decides where a line ends from each word's line number plus
the newlines inside the word (a quoted word may span lines), and whether two words come from the same
file. :class:`LexToken` carries that; :func:`tokenize` gives the plain :class:`Token` view.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Token

__all__ = ["LexToken", "lex", "tokenize"]

# Go's unicode.IsSpace, which is narrower than str.isspace (that one also splits on \x1c-\x1f).
_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_BOM = "\ufeff"


@dataclass(slots=True)
class LexToken:
    """A word as the parser handles it.

    ``file`` identifies the source for "same file" checks: the parser passes ``""`` for the main
    input (caddy does the same) and the absolute path for an imported file. ``text`` is mutable
    because environment expansion rewrites arguments in place, and later line-break counting must
    see the rewritten text, as in caddy.
    """

    text: str
    file: str
    line: int

    def line_breaks(self) -> int:
        return self.text.count("\n")


def lex(text: str, file: str = "") -> list[LexToken]:
    """Every word of ``text``, with the line it starts on (lines count from 1)."""
    tokens: list[LexToken] = []
    append = tokens.append
    n = len(text)
    i = 1 if text.startswith(_BOM) else 0
    line = 1
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            if ch == "\n":
                line += 1
            i += 1
            continue
        if ch == "#":
            # A comment that starts a word runs to the end of the line; the newline itself is
            # left for the loop to count.
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch == '"':
            start_line = line
            i, line, word = _quoted(text, i + 1, line)
            if word is not None:
                append(LexToken(word, file, start_line))
            continue
        start = i
        while i < n:
            ch = text[i]
            if ch == "#" or (ch in _SPACE and ch != "\r"):
                break
            i += 1
        word = text[start:i]
        if "\r" in word:
            # caddy drops carriage returns wherever they are, even inside a word.
            word = word.replace("\r", "")
        append(LexToken(word, file, line))
        if i < n and text[i] == "#":
            # caddy's comment flag lives only as long as the word being read, so a "#" inside a
            # word hides characters up to the next whitespace, not to the end of the line.
            while i < n and (text[i] not in _SPACE or text[i] == "\r"):
                i += 1
    return tokens


def _quoted(text: str, i: int, line: int) -> tuple[int, int, str | None]:
    """Read a quoted word whose opening quote is just before ``i``.

    Returns the index after the word, the line counter after it, and the word; ``None`` when the
    input ended before any character of an unclosed quote (caddy then yields no word at all, while
    ``""`` yields an empty one).
    """
    n = len(text)
    parts: list[str] = []
    start = i
    while i < n:
        ch = text[i]
        if ch == '"':
            parts.append(text[start:i])
            return i + 1, line, "".join(parts)
        if ch == "\\":
            if i + 1 >= n:
                # A backslash that is the last character escapes nothing and is dropped.
                parts.append(text[start:i])
                i = n
                start = n
                break
            nxt = text[i + 1]
            if nxt == '"':
                parts.append(text[start:i])
                parts.append('"')
                i += 2
                start = i
                continue
            # Any other escaped character keeps its backslash, and cannot close the quote.
            if nxt == "\n":
                line += 1
            i += 2
            continue
        if ch == "\n":
            line += 1
        i += 1
    parts.append(text[start:i])
    word = "".join(parts)
    return n, line, word if word else None


def tokenize(text: str, filename: str) -> list[Token]:
    """The words of ``text`` as :class:`Token` values naming ``filename``."""
    return [Token(t.text, filename, t.line) for t in lex(text)]
