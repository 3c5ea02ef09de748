"""The lexer, against coredns/caddy's caddyfile/lexer_test.go and the quirks of its lexer.go."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import Token, tokenize
from twisted_coredns.corefile.lexer import lex


def lines_and_texts(text: str) -> list[tuple[int, str]]:
    return [(t.line, t.text) for t in tokenize(text, "Corefile")]


# Rows of caddy's TestLexer: input, then (line, text) of every token.
CADDY_LEXER_CASES = [
    ("host:123", [(1, "host:123")]),
    ("host:123\n\n\t\t\t\t\tdirective", [(1, "host:123"), (3, "directive")]),
    (
        "host:123 {\n\t\t\t\t\t\tdirective\n\t\t\t\t\t}",
        [(1, "host:123"), (1, "{"), (2, "directive"), (3, "}")],
    ),
    ("host:123 { directive }", [(1, "host:123"), (1, "{"), (1, "directive"), (1, "}")]),
    (
        "host:123 {\n\t#comment\n\tdirective\n\t# comment\n\tfoobar # another comment\n}",
        [(1, "host:123"), (1, "{"), (3, "directive"), (5, "foobar"), (6, "}")],
    ),
    ('a "quoted value" b\n\t\t\t\t\tfoobar', [(1, "a"), (1, "quoted value"), (1, "b"), (2, "foobar")]),
    ('A "quoted \\"value\\" inside" B', [(1, "A"), (1, 'quoted "value" inside'), (1, "B")]),
    ('"don\'t\\escape"', [(1, "don't\\escape")]),
    ('"don\'t\\\\escape"', [(1, "don't\\\\escape")]),
    (
        'A "quoted value with line\n\t\t\t\t\tbreak inside" {\n\t\t\t\t\t\tfoobar\n\t\t\t\t\t}',
        [(1, "A"), (1, "quoted value with line\n\t\t\t\t\tbreak inside"), (2, "{"), (3, "foobar"), (4, "}")],
    ),
    ('"C:\\php\\php-cgi.exe"', [(1, "C:\\php\\php-cgi.exe")]),
    ('empty "" string', [(1, "empty"), (1, ""), (1, "string")]),
    ("skip those\r\nCR characters", [(1, "skip"), (1, "those"), (2, "CR"), (2, "characters")]),
    ("\ufeff:8080", [(1, ":8080")]),
]


# caddy's TestAllTokens: input, then the text of every token.
ALL_TOKENS = [("a b c\nd e", ["a", "b", "c", "d", "e"]), ("", []), ("\n", []), (" ", []), ("\t\n", [])]


# What lexer.go does that the test file does not show.
QUIRKS = [
    # Braces are structural only as words of their own.
    ("foo{ {$X} }bar", [(1, "foo{"), (1, "{$X}"), (1, "}bar")]),
    # A quote opens a quoted word only at the start of a word.
    ('a"b c"', [(1, 'a"b'), (1, 'c"')]),
    ('"a""b"', [(1, "a"), (1, "b")]),
    ('"a"b', [(1, "a"), (1, "b")]),
    # A "#" inside a word hides the rest of that word only; one that starts a word hides the line.
    ("hosts#comment more\nnext", [(1, "hosts"), (1, "more"), (2, "next")]),
    ("a # b c\nd", [(1, "a"), (2, "d")]),
    ('"a # b" c', [(1, "a # b"), (1, "c")]),
    # Carriage returns vanish outside quotes, even inside a word, but stay inside quotes.
    ("ab\rcd", [(1, "abcd")]),
    ('"a\r\nb" c', [(1, "a\r\nb"), (2, "c")]),
    # Only Go's unicode.IsSpace separates: no-break space does, the information separators do not.
    ("a\xa0b\x1cc", [(1, "a"), (1, "b\x1cc")]),
    ("a\u2028b\u3000c", [(1, "a"), (1, "b"), (1, "c")]),
    # Only "\n" counts lines.
    ("a\vb\fc\nd", [(1, "a"), (1, "b"), (1, "c"), (2, "d")]),
    # Unclosed quotes: the text so far is a word, unless there is none.
    ('a "open', [(1, "a"), (1, "open")]),
    ('a "', [(1, "a")]),
    ('a "x\\', [(1, "a"), (1, "x")]),
    # A backslash escapes only a quote; "\\" keeps both and does not escape the quote after it.
    ('"a\\\\" b', [(1, "a\\\\"), (1, "b")]),
    ('"a\\\nb" c', [(1, "a\\\nb"), (2, "c")]),
    # The BOM is skipped only at the very start.
    ("a \ufeffb", [(1, "a"), (1, "\ufeffb")]),
]


class LexerTests(SynchronousTestCase):
    def test_caddy_lexer_cases(self) -> None:
        for row in CADDY_LEXER_CASES:
            text, expected = row
            self.assertEqual(lines_and_texts(text), expected, msg=repr(row))

    def test_all_tokens(self) -> None:
        for row in ALL_TOKENS:
            text, expected = row
            self.assertEqual([t.text for t in tokenize(text, "Corefile")], expected, msg=repr(row))

    def test_lexer_quirks(self) -> None:
        for row in QUIRKS:
            text, expected = row
            self.assertEqual(lines_and_texts(text), expected, msg=repr(row))

    def test_tokens_name_the_file(self) -> None:
        self.assertEqual(
            tokenize("a\n b", "/etc/Corefile"),
            [
                Token("a", "/etc/Corefile", 1),
                Token("b", "/etc/Corefile", 2),
            ],
        )

    def test_quoted_word_keeps_its_first_line_and_counts_its_newlines(self) -> None:
        (word, after) = lex('"one\ntwo\nthree" next')
        self.assertEqual((word.line, word.line_breaks()), (1, 2))
        # The next word is on the line where the quote closed, which is how caddy tells it is an argument.
        self.assertEqual(after.line, word.line + word.line_breaks())

    def test_lex_marks_the_source(self) -> None:
        self.assertEqual({t.file for t in lex("a b", "/abs/file")}, {"/abs/file"})

    def test_lexer_is_linear_on_large_input(self) -> None:
        text = ("dir arg1 arg2 # comment\n" + '"quoted word" x\n') * 20000
        tokens = lex(text)
        self.assertEqual(len(tokens), 20000 * 5)
        self.assertEqual(tokens[-1].line, 40000)
