"""Turn Corefile text into server blocks, the way coredns/caddy's parser does.

CoreDNS users rely on the quirks of caddy's dialect (a block without braces, keys continued by a
trailing comma, ``import`` of files, globs and snippets, ``{$ENV}`` expansion), and its error
messages are what they search for. So the first pass here walks the words with a cursor exactly as
caddy's parser does: the same checks, in the same order, at the same word, with the same wording.
It groups the words of each directive as caddy does (its name, the rest of its line, and any block
opened by a ``{`` word, to the matching ``}``).

A second pass shapes each group into :class:`Directive` trees, which caddy leaves to every plugin:
a line is a word and the words after it on the same line; a ``{`` opens a block for the line it is
on (or, when it starts a line, for the line before it); a ``}`` ends the block and the line, so any
words after it on the same line start a new line.
"""

from __future__ import annotations

import codecs
import os
import posixpath
import re
import stat
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass

from twisted.logger import Logger

from .errors import CorefileError, arg_error, parse_error, syntax_error
from .lexer import LexToken, lex
from .model import Directive, ServerBlock, Token

__all__ = ["MAX_FILE_EXPANSIONS", "MAX_SNIPPET_EXPANSIONS", "decode", "parse", "parse_file"]

_log = Logger(namespace="twisted_coredns.corefile")

#: How many snippet imports one parse may expand; a cycle of snippets stops here.
MAX_SNIPPET_EXPANSIONS = 10000
#: How many file or glob imports one parse may expand; a cycle of files stops here. CoreDNS's
#: message for this limit prints MAX_SNIPPET_EXPANSIONS instead, and so does ours.
MAX_FILE_EXPANSIONS = 100000

# An environment value may itself hold references, which caddy expands again; a value that refers to
# itself would make caddy loop forever. Past these bounds we report an error instead.
_MAX_ENV_GROWTH_STEPS = 10000
_MAX_ENV_TEXT = 1 << 20

# The kinds of word in a directive's group: plain words, and the braces that shape its blocks.
_WORD, _OPEN, _CLOSE = 0, 1, 2


def parse(
    text: str | bytes,
    filename: str = "Corefile",
    *,
    directives: Container[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[ServerBlock]:
    """Parse Corefile ``text``; ``filename`` names it in errors and anchors relative imports.

    ``directives``, when given, lists the directive names a server block may use (CoreDNS's
    plugin.cfg); any other name is an error. ``env`` backs ``{$VAR}`` and ``{%VAR%}`` and defaults
    to ``os.environ``. Bytes are decoded as CoreDNS reads them (see :func:`decode`). Raises
    :class:`CorefileError` for every problem in the input.
    """
    if isinstance(text, bytes):
        text = decode(text)
    parser = _Parser(filename, lex(text), directives, os.environ if env is None else env)
    return parser.parse_all()


def parse_file(
    path: str | os.PathLike[str],
    *,
    directives: Container[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[ServerBlock]:
    """Read and parse the Corefile at ``path``; errors name the path as given."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CorefileError(f"open {filename}: {_os_error_text(e)}", filename, None) from None
    return parse(data, filename, directives=directives, env=env)


def decode(data: bytes) -> str:
    """Bytes to text as Go reads runes: each byte of invalid UTF-8 becomes one U+FFFD."""
    return data.decode("utf-8", errors=_GO_REPLACE)


def _go_replace(exc: UnicodeError) -> tuple[str, int]:
    # Python's "replace" swallows a whole truncated sequence into one U+FFFD; Go gives one per byte.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.start + 1


_GO_REPLACE = "twisted_coredns.go_replace"
codecs.register_error(_GO_REPLACE, _go_replace)


@dataclass(slots=True)
class _Group:
    """The words of one directive as caddy groups them: its name and what follows it."""

    name: LexToken
    name_text: str  # the name after environment expansion (caddy leaves the word itself as is)
    items: list[tuple[LexToken, int]]


@dataclass(slots=True)
class _Block:
    keys: list[LexToken]
    groups: list[_Group]


class _EnvLoopError(Exception):
    pass


class _Parser:
    """One parse: caddy's Dispenser (a cursor over the words) and its parser in one object."""

    def __init__(
        self,
        filename: str,
        tokens: list[LexToken],
        directives: Container[str] | None,
        env: Mapping[str, str],
    ) -> None:
        self.filename = filename
        self.tokens = tokens
        self.cursor = -1
        self.directives = directives
        self.env = env
        self.eof = False
        self.snippets: dict[str, list[LexToken]] = {}
        self.snippet_expansions = 0
        self.file_expansions = 0
        self.block = _Block([], [])

    # -- the Dispenser -------------------------------------------------------------------------

    def next(self) -> bool:
        if self.cursor < len(self.tokens) - 1:
            self.cursor += 1
            return True
        return False

    def next_arg(self) -> bool:
        """Move to the next word only if it is on the same line as the current one."""
        if self.cursor < 0:
            self.cursor += 1
            return True
        tokens = self.tokens
        if self.cursor >= len(tokens) - 1:
            return False
        cur, nxt = tokens[self.cursor], tokens[self.cursor + 1]
        if cur.file == nxt.file and cur.line + cur.line_breaks() == nxt.line:
            self.cursor += 1
            return True
        return False

    def val(self) -> str:
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor].text
        return ""

    def line(self) -> int:
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor].line
        return 0

    def file(self) -> str:
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor].file or self.filename
        return self.filename

    def is_new_line(self) -> bool:
        """Whether the current word is on a later line (or in another file) than the one before."""
        if self.cursor < 1:
            return True
        if self.cursor > len(self.tokens) - 1:
            return False
        prev, cur = self.tokens[self.cursor - 1], self.tokens[self.cursor]
        return prev.file != cur.file or prev.line + prev.line_breaks() < cur.line

    def err(self, msg: str) -> CorefileError:
        return parse_error((self.file(), self.line()), msg)

    def syntax_err(self, expected: str) -> CorefileError:
        return syntax_error((self.file(), self.line()), self.val(), expected)

    def display(self, tok: LexToken) -> Token:
        return Token(tok.text, tok.file or self.filename, tok.line)

    # -- caddy's parser ------------------------------------------------------------------------

    def parse_all(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while self.next():
            self.block = _Block([], [])
            self.begin()
            if self.block.keys:
                blocks.append(self.shape(self.block))
        return blocks

    def begin(self) -> None:
        if not self.tokens:
            return
        self.addresses()
        if self.eof:
            # The input ended with the keys: a block with no directives.
            return
        keys = self.block.keys
        if len(keys) == 1 and keys[0].text.startswith("(") and keys[0].text.endswith(")"):
            self.define_snippet(keys[0].text[1:].removesuffix(")"))
            return
        self.block_contents()

    def addresses(self) -> None:
        expecting_another = False
        while True:
            key = self.expand(self.val())
            if key == "import" and self.is_new_line():
                self.do_import()
                continue
            if key == "{":
                if expecting_another:
                    raise self.err(f"Expected another address but had '{key}' - check for extra comma")
                break
            if key:  # an empty word ("") is skipped
                # A trailing comma says another key follows, possibly on the next line.
                expecting_another = key.endswith(",")
                if expecting_another:
                    key = key[:-1]
                self.block.keys.append(LexToken(key, self.tokens[self.cursor].file, self.line()))
            has_next = self.next()
            if expecting_another and not has_next:
                raise self.err("Unexpected EOF")
            if not has_next:
                self.eof = True
                break
            if not expecting_another and self.is_new_line():
                break

    def define_snippet(self, name: str) -> None:
        if name in self.snippets:
            raise self.err(f"redeclaration of previously declared snippet {name}")
        if self.val() != "{":
            raise self.syntax_err("{")
        depth = 1
        body: list[LexToken] = []
        while self.next():
            text = self.val()
            if text == "}":
                depth -= 1
                if depth == 0:
                    break
            elif text == "{":
                depth += 1
            body.append(self.tokens[self.cursor])
        if depth != 0:
            raise self.syntax_err("}")
        # Only the plainest cycle is caught here: a line of the body importing the snippet itself.
        for i in range(len(body) - 1):
            tok = body[i]
            if tok.text != "import":
                continue
            prev = body[i - 1] if i else None
            at_line_start = prev is None or prev.file != tok.file or prev.line != tok.line
            if at_line_start and self.expand(body[i + 1].text) == name:
                raise self.err(f"maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")
        self.snippets[name] = body
        self.block.keys = []  # a snippet is not a server block

    def block_contents(self) -> None:
        braced = self.val() == "{"
        if not braced:
            # A block without braces runs to the end of the input (or to a stray "}").
            self.cursor -= 1
        self.directives_()
        if braced and self.val() != "}":
            raise self.syntax_err("}")

    def directives_(self) -> None:
        while self.next():
            text = self.val()
            if text == "}":
                break
            if text == "import":
                self.do_import()
                self.cursor -= 1  # the loop's next() lands on the first imported word
                continue
            self.directive()

    def directive(self) -> None:
        name_tok = self.tokens[self.cursor]
        name = self.expand(name_tok.text)
        if self.directives is not None and name not in self.directives:
            raise self.err(f"Unknown directive '{name}'")
        items: list[tuple[LexToken, int]] = []
        nesting = 0
        while self.next():
            text = self.val()
            if text == "{":
                nesting += 1
                kind = _OPEN
            elif nesting == 0 and self.is_new_line():
                self.cursor -= 1
                break
            elif text == "}":
                if nesting == 0:
                    raise self.err("Unexpected '}' because no matching opening brace")
                nesting -= 1
                kind = _CLOSE
            elif text == "import" and self.is_new_line():
                self.do_import()
                self.cursor -= 1
                continue
            else:
                kind = _WORD
            tok = self.tokens[self.cursor]
            tok.text = self.expand(tok.text)
            items.append((tok, kind))
        if nesting > 0:
            raise self.err("Unexpected EOF")
        self.block.groups.append(_Group(name_tok, name, items))

    # -- import ----------------------------------------------------------------------------------

    def do_import(self) -> None:
        """Replace ``import PATTERN`` (two words) with the words it names.

        Leaves the cursor on the first imported word (or on what followed the import when it named
        nothing), as caddy does.
        """
        if not self.next_arg():
            tok = self.tokens[self.cursor]
            raise arg_error(self.display(tok))
        pattern = self.expand(self.val())
        if not pattern:
            raise self.err("Import requires a non-empty filepath")
        if self.next_arg():
            raise self.err("Import takes only one argument (glob pattern or file)")
        if pattern in self.snippets:
            if self.snippet_expansions >= MAX_SNIPPET_EXPANSIONS:
                raise self.err(f"maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")
            self.snippet_expansions += 1
            imported = [LexToken(t.text, t.file, t.line) for t in self.snippets[pattern]]
        else:
            if self.file_expansions >= MAX_FILE_EXPANSIONS:
                raise self.err(f"maximum file import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")
            self.file_expansions += 1
            imported = self.import_files(pattern)
        at = self.cursor - 1
        self.tokens[at : at + 2] = imported
        self.cursor = at

    def import_files(self, pattern: str) -> list[LexToken]:
        try:
            importing = _go_abs(self.file())
        except OSError as e:
            raise self.err(
                f"Failed to get absolute path of file: {self.filename}: {_os_error_text(e)}"
            ) from None
        if posixpath.isabs(pattern):
            glob_pattern = pattern
        else:
            glob_pattern = _go_clean(posixpath.dirname(importing) + "/" + pattern)
        if (
            glob_pattern.count("*") > 1
            or glob_pattern.count("?") > 1
            or ("[" in glob_pattern and "]" in glob_pattern)
        ):
            # Patterns with many wildcards can take very long to expand (coredns/coredns#2096).
            raise self.err(f"Glob pattern may only contain one wildcard (*), but has others: {glob_pattern}")
        try:
            matches = _go_glob(glob_pattern)
        except _BadPatternError:
            raise self.err(f"Failed to use import pattern {pattern}: syntax error in pattern") from None
        if not matches:
            if any(c in glob_pattern for c in "*?[]"):
                _log.warn("No files matching import glob pattern: {pattern}", pattern=pattern)
            else:
                raise self.err(f"File to import not found: {pattern}")
        imported: list[LexToken] = []
        for path in matches:
            imported.extend(self.import_one(path))
        return imported

    def import_one(self, path: str) -> list[LexToken]:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError) as e:
            raise self.err(f"Could not import {path}: open {path}: {_os_error_text(e)}") from None
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise self.err(f"Could not import {path}: is a directory")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read()
        except OSError as e:
            raise self.err(f"Could not read tokens while importing {path}: {_os_error_text(e)}") from None
        finally:
            os.close(fd)
        try:
            source = _go_abs(path)
        except OSError as e:
            raise self.err(
                f"Failed to get absolute path of file: {self.filename}: {_os_error_text(e)}"
            ) from None
        return lex(decode(data), source)

    # -- environment -----------------------------------------------------------------------------

    def expand(self, text: str) -> str:
        """caddy's ``{$VAR}`` / ``{%VAR%}`` replacement, reported at the current word on a loop."""
        if "{" not in text:
            return text
        try:
            expanded = _replace_refs(text, "{%", "%}", self.lookup)
            return _replace_refs(expanded, "{$", "}", self.lookup)
        except _EnvLoopError:
            raise self.err(f"environment variable expansion does not end: {text}") from None

    def lookup(self, name: str) -> str:
        try:
            value = self.env.get(name)
        except (UnicodeError, ValueError, TypeError):
            return ""
        return value if isinstance(value, str) else ""

    # -- shaping ---------------------------------------------------------------------------------

    def shape(self, block: _Block) -> ServerBlock:
        keys = [self.display(k) for k in block.keys]
        directives: list[Directive] = []
        for group in block.groups:
            lines = self.shape_group(group)
            for extra in lines[1:]:
                # Words after a block's "}" on its line make a directive of their own here; caddy
                # would hand them to the first directive's plugin as another use of it.
                if self.directives is not None and extra.name not in self.directives:
                    raise parse_error(extra.token, f"Unknown directive '{extra.name}'")
            directives.extend(lines)
        return ServerBlock(keys, directives)

    def shape_group(self, group: _Group) -> list[Directive]:
        name = group.name
        head = Directive(Token(group.name_text, name.file or self.filename, name.line))
        items = group.items
        i = 0
        # caddy puts every word before the first "{" on the directive's line, whatever the lines.
        while i < len(items) and items[i][1] == _WORD:
            head.args.append(self.display(items[i][0]))
            i += 1
        root: list[Directive] = [head]
        lines = root
        current: Directive | None = head
        stack: list[tuple[list[Directive], Directive]] = []
        prev = items[i - 1][0] if i else name
        for tok, kind in items[i:]:
            if kind == _CLOSE:
                if stack:
                    lines, owner = stack.pop()
                    owner.close_brace = self.display(tok)
                current = None
            elif kind == _OPEN:
                brace = self.display(tok)
                if current is None:
                    # A block with no line to belong to: the brace names it, as caddy's plugins
                    # would see a "{" where they expect a property.
                    current = Directive(brace)
                    lines.append(current)
                current.open_brace = brace
                current.block = []
                stack.append((lines, current))
                lines = current.block
                current = None
            elif current is not None and _same_line(prev, tok):
                current.args.append(self.display(tok))
            else:
                current = Directive(self.display(tok))
                lines.append(current)
            prev = tok
        return root


def _same_line(prev: LexToken, tok: LexToken) -> bool:
    # caddy's NextArg test: a snippet replayed in a block keeps its own (earlier) line numbers, so
    # "on a later line" would not do; the line must match exactly.
    return prev.file == tok.file and prev.line + prev.line_breaks() == tok.line


def _replace_refs(text: str, start: str, end: str, lookup: Callable[[str], str]) -> str:
    """Replace every ``start NAME end`` in ``text``, rescanning from the start after each name.

    Like caddy, a value is scanned again (so it may refer to other variables), a reference with an
    empty name stops the scan, and an unterminated one is left as is.
    """
    growth_steps = 0
    index = text.find(start)
    while index != -1:
        end_index = text.find(end, index)
        if end_index == -1:
            break
        if end_index <= index + len(start):
            return text
        ref = text[index : end_index + len(end)]
        replaced = text.replace(ref, lookup(ref[len(start) : -len(end)]))
        if len(replaced) >= len(text):
            growth_steps += 1
            if growth_steps > _MAX_ENV_GROWTH_STEPS or len(replaced) > _MAX_ENV_TEXT:
                raise _EnvLoopError
        text = replaced
        index = text.find(start)
    return text


# -- Go's path/filepath, as far as import needs it ------------------------------------------------


class _BadPatternError(Exception):
    pass


def _go_clean(path: str) -> str:
    """Go's filepath.Clean, which (unlike normpath) folds a leading ``//`` too."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//") and not cleaned.startswith("///"):
        cleaned = cleaned[1:]
    return cleaned


def _go_abs(path: str) -> str:
    if posixpath.isabs(path):
        return _go_clean(path)
    return _go_clean(os.getcwd() + "/" + path)


def _go_join(directory: str, name: str) -> str:
    return _go_clean(directory + "/" + name if directory else name)


def _has_meta(path: str) -> bool:
    return any(c in path for c in "*?[\\")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a Go glob element, or :class:`_BadPatternError` if Go's Match would reject it.

    The import check lets no ``[...]`` class through, so an unescaped ``[`` here always lacks its
    ``]``, which Go reports as a bad pattern.
    """
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            raise _BadPatternError
        elif ch == "\\":
            i += 1
            if i >= n:
                raise _BadPatternError
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _go_glob(pattern: str) -> list[str]:
    """Go's filepath.Glob, without recursion so that deep patterns cannot exhaust Python's stack."""
    _pattern_regex(pattern)
    if not _has_meta(pattern):
        try:
            os.lstat(pattern)
        except (OSError, ValueError):
            return []
        return [pattern]
    escaped = _escaped_positions(pattern)
    elements: list[str] = []
    current = pattern
    while True:
        if len(elements) >= 10000:
            raise _BadPatternError  # Go's limit on the depth of a pattern
        cut = current.rfind("/") + 1
        directory, element = current[:cut], current[cut:]
        # Go's cleanGlobPath: drop the one separator that Split left at the end.
        if directory == "":
            directory = "."
        elif directory != "/":
            directory = directory[:-1]
        elements.append(element)
        if not _has_meta(directory):
            break
        if directory == current:
            raise _BadPatternError
        if cut - 1 in escaped:
            # Go checks each directory as a pattern of its own; cut at an escaped "/", it ends
            # in a lone backslash.
            raise _BadPatternError
        current = directory
    found = [directory]
    for element in reversed(elements):
        if not found:
            break
        regex = _pattern_regex(element)
        found = [match for d in found for match in _glob_dir(d, regex)]
    return found


def _escaped_positions(pattern: str) -> set[int]:
    escaped: set[int] = set()
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            escaped.add(i + 1)
            i += 2
        else:
            i += 1
    return escaped


def _glob_dir(directory: str, regex: re.Pattern[str]) -> Iterator[str]:
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            return
        names = os.listdir(directory)
    except (OSError, ValueError):
        return
    names.sort(key=os.fsencode)  # Go sorts the raw bytes
    for name in names:
        if regex.fullmatch(name):
            yield _go_join(directory, name)


def _os_error_text(e: BaseException) -> str:
    """An OSError worded like Go's syscall errors ("no such file or directory")."""
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror
        return text[:1].lower() + text[1:]
    if isinstance(e, ValueError):
        return "invalid argument"
    return str(e)
