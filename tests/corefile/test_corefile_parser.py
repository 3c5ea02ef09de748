"""The parser, against coredns/caddy's caddyfile/parse_test.go and behaviour checked on its parse.go."""

from __future__ import annotations

from twisted_coredns.corefile import CorefileError, Directive, ServerBlock, Token, parse
from twisted_coredns.corefile import parser as corefile_parser

from .support import CorefileTestCase


def caddy_token_counts(block: ServerBlock) -> dict[str, int]:
    """caddy's view of a block: all tokens of each directive name (name, args, braces, nested)."""

    def count(d: Directive) -> int:
        n = 1 + len(d.args)
        if d.block is not None:
            n += (d.open_brace is not None) + (d.close_brace is not None)
            n += sum(count(inner) for inner in d.block)
        return n

    counts: dict[str, int] = {}
    for d in block.directives:
        counts[d.name] = counts.get(d.name, 0) + count(d)
    return counts


# caddy's TestParseOneAndImport, without the rows that need files (see test_corefile_imports.py):
# input, keys, tokens per directive.
PARSE_ONE_CASES = [
    ("localhost", ["localhost"], {}),
    ("localhost\n\t\t  dir1", ["localhost"], {"dir1": 1}),
    ("localhost:1234\n\t\t  dir1 foo bar", ["localhost:1234"], {"dir1": 3}),
    ("localhost {\n\t\t    dir1\n\t\t  }", ["localhost"], {"dir1": 1}),
    (
        "localhost:1234 {\n\t\t    dir1 foo bar\n\t\t    dir2\n\t\t  }",
        ["localhost:1234"],
        {"dir1": 3, "dir2": 1},
    ),
    (
        "http://localhost https://localhost\n\t\t  dir1 foo bar",
        ["http://localhost", "https://localhost"],
        {"dir1": 3},
    ),
    (
        "http://localhost https://localhost {\n\t\t    dir1 foo bar\n\t\t  }",
        ["http://localhost", "https://localhost"],
        {"dir1": 3},
    ),
    (
        "http://localhost, https://localhost {\n\t\t    dir1 foo bar\n\t\t  }",
        ["http://localhost", "https://localhost"],
        {"dir1": 3},
    ),
    (
        "host1:80, http://host2.com\n\t\t  dir1 foo bar\n\t\t  dir2 baz",
        ["host1:80", "http://host2.com"],
        {"dir1": 3, "dir2": 2},
    ),
    (
        "http://host1.com,\n\t\t  http://host2.com,\n\t\t  https://host3.com",
        ["http://host1.com", "http://host2.com", "https://host3.com"],
        {},
    ),
    (
        "http://host1.com:1234, https://host2.com\n\t\t  dir1 foo {\n\t\t    bar baz\n\t\t  }\n\t\t  dir2",
        ["http://host1.com:1234", "https://host2.com"],
        {"dir1": 6, "dir2": 1},
    ),
    (
        "127.0.0.1\n\t\t  dir1 {\n\t\t    bar baz\n\t\t  }\n\t\t  dir2 {\n\t\t    foo bar\n\t\t  }",
        ["127.0.0.1"],
        {"dir1": 5, "dir2": 5},
    ),
    ("localhost\n\t\t  dir1 {\n\t\t  }", ["localhost"], {"dir1": 3}),
    (
        "localhost\n\t\t  dir1 {\n\t\t    nested {\n\t\t      foo\n\t\t    }\n\t\t  }\n\t\t  dir2 foo bar",
        ["localhost"],
        {"dir1": 7, "dir2": 3},
    ),
]


# caddy's TestParseAll: keys per server block, in order.
PARSE_ALL_CASES = [
    ("localhost", [["localhost"]]),
    ("localhost:1234", [["localhost:1234"]]),
    ("localhost:1234 {\n\t\t  }\n\t\t  localhost:2015 {\n\t\t  }", [["localhost:1234"], ["localhost:2015"]]),
    ("localhost:1234, http://host2", [["localhost:1234", "http://host2"]]),
    (
        "http://host1.com, http://host2.com {\n\t\t  }\n"
        "\t\t  https://host3.com, https://host4.com {\n\t\t  }",
        [["http://host1.com", "http://host2.com"], ["https://host3.com", "https://host4.com"]],
    ),
    # Found by checking parse.go: a stray "}" ends a block without braces, and what follows is a new block.
    ("a\n}\nb\ndir", [["a"], ["b"]]),
    # ... and after a braced block, a stray "}" is read as a key.
    ("a {\n}\n}", [["a"], ["}"]]),
    # "," alone is a key with nothing before its comma: an empty key.
    ("a , b", [["a", "", "b"]]),
    ("a,\n\nb {\n}", [["a", "b"]]),
    # Keys with parentheses are a snippet only when alone and followed by a block.
    ("(s)", [["(s)"]]),
    ("(s) x {\n}", [["(s)", "x"]]),
    # A block with no keys is dropped.
    ("{\n}", []),
    ("", []),
    ('""', []),
    ("# only a comment\n\n   # and another", []),
]


# Errors, worded and placed as caddy does.
ERROR_CASES = [
    (
        "http://localhost, {\n\t\t  }",
        "Corefile:1 - Error during parsing: Expected another address but had '{' - check for extra comma",
    ),
    ("localhost:1234, http://host2,", "Corefile:1 - Error during parsing: Unexpected EOF"),
    ("localhost\n\t\t  dir1 {\n\t\t    foo", "Corefile:3 - Error during parsing: Unexpected EOF"),
    (
        "localhost\n\t\t  dir1 {\n\t\t  } }",
        "Corefile:3 - Error during parsing: Unexpected '}' because no matching opening brace",
    ),
    (
        ". {\n dir1 }\n}",
        "Corefile:2 - Error during parsing: Unexpected '}' because no matching opening brace",
    ),
    # A directive and the closing brace of its server block may not share a line.
    ("a { x }", "Corefile:1 - Error during parsing: Unexpected '}' because no matching opening brace"),
    (". {\n whoami", "Corefile:2 - Syntax error: Unexpected token 'whoami', expecting '}'"),
    ("(s)\nfoo", "Corefile:2 - Syntax error: Unexpected token 'foo', expecting '{'"),
    ("(s) {\n a", "Corefile:2 - Syntax error: Unexpected token 'a', expecting '}'"),
    (
        "(s) {\n a\n}\n(s) {\n b\n}",
        "Corefile:4 - Error during parsing: redeclaration of previously declared snippet s",
    ),
    (
        "(loop) {\nimport loop\n}\nimport loop",
        "Corefile:3 - Error during parsing: maximum snippet import depth (10000) exceeded",
    ),
    (
        "(loop) {\n{ }\nimport loop\n}\nimport loop",
        "Corefile:4 - Error during parsing: maximum snippet import depth (10000) exceeded",
    ),
    (
        "import",
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'import'",
    ),
    ('import ""', "Corefile:1 - Error during parsing: Import requires a non-empty filepath"),
    (
        "a {\n import\n}",
        "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'import'",
    ),
    (
        "a {\n import x y\n}",
        "Corefile:2 - Error during parsing: Import takes only one argument (glob pattern or file)",
    ),
]


class ParserCase(CorefileTestCase):
    def parse_one(self, text: str) -> ServerBlock:
        blocks = parse(text)
        self.assertEqual(len(blocks), 1, msg=repr(text))
        return blocks[0]


class TestCaddyTables(ParserCase):
    def test_caddy_parse_one(self) -> None:
        for row in PARSE_ONE_CASES:
            text, keys, counts = row
            block = self.parse_one(text)
            self.assertEqual(block.key_texts, keys, msg=repr(row))
            self.assertEqual(caddy_token_counts(block), counts, msg=repr(row))

    def test_caddy_parse_all(self) -> None:
        for row in PARSE_ALL_CASES:
            text, keys = row
            self.assertEqual([b.key_texts for b in parse(text)], keys, msg=repr(row))

    def test_errors(self) -> None:
        for row in ERROR_CASES:
            text, message = row
            error = self.parse_error(row, parse, text)
            self.assertEqual(str(error), message, msg=repr(row))

    def test_error_carries_file_and_line(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            parse("a {\n b {\n c", "/etc/coredns/Corefile")
        self.assertEqual((cm.exception.file, cm.exception.line), ("/etc/coredns/Corefile", 3))
        self.assertTrue(str(cm.exception).startswith("/etc/coredns/Corefile:3 - "), str(cm.exception))


class TestDirectiveValidation(ParserCase):
    def test_unknown_directive(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            parse(". {\n whoami\n foo bar\n}", directives={"whoami", "log"})
        self.assertEqual(str(cm.exception), "Corefile:3 - Error during parsing: Unknown directive 'foo'")

    def test_known_directives_pass(self) -> None:
        block = self.parse_one(". {\n whoami\n log {\n  class all\n }\n}")
        self.assertEqual([d.name for d in block.directives], ["whoami", "log"])
        self.assertTrue(parse(". {\n whoami\n log {\n  class all\n }\n}", directives=["whoami", "log"]))

    def test_only_top_level_names_are_checked(self) -> None:
        self.assertTrue(parse(". {\n log {\n  anything goes\n }\n}", directives={"log"}))

    def test_empty_list_allows_nothing(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            parse(". {\n whoami\n}", directives=[])
        self.assertRegex(str(cm.exception), "Unknown directive 'whoami'")

    def test_snippet_bodies_are_checked_where_used(self) -> None:
        self.assertEqual(parse("(s) {\n foo\n}", directives={"log"}), [])
        with self.assertRaises(CorefileError) as cm:
            parse("(s) {\n foo\n}\n. {\n import s\n}", directives={"log"})
        self.assertRegex(str(cm.exception), "Corefile:2 - Error during parsing: Unknown directive 'foo'")


class TestDirectiveTree(ParserCase):
    def test_args_and_positions(self) -> None:
        block = self.parse_one(". {\n forward . 8.8.8.8 9.9.9.9\n}")
        (d,) = block.directives
        self.assertEqual(d.token, Token("forward", "Corefile", 2))
        self.assertEqual(d.values, [".", "8.8.8.8", "9.9.9.9"])
        self.assertIsNone(d.block)
        self.assertIsNone(d.open_brace)
        self.assertIsNone(d.close_brace)
        self.assertEqual(d.last_token(), Token("9.9.9.9", "Corefile", 2))

    def test_nested_blocks(self) -> None:
        text = ". {\n forward . 1.1.1.1 {\n  policy random\n  health {\n   interval 5s\n  }\n }\n cache\n}"
        forward, cache = self.parse_one(text).directives
        self.assertEqual(forward.open_brace, Token("{", "Corefile", 2))
        self.assertEqual(forward.close_brace, Token("}", "Corefile", 7))
        assert forward.block is not None
        policy, health = forward.block
        self.assertEqual((policy.name, policy.values, policy.line), ("policy", ["random"], 3))
        assert health.block is not None
        self.assertEqual([(d.name, d.values) for d in health.block], [("interval", ["5s"])])
        self.assertIsNone(cache.block)

    def test_empty_block_is_an_empty_list(self) -> None:
        (d,) = self.parse_one(". {\n log {\n }\n}").directives
        self.assertEqual(d.block, [])

    def test_words_after_an_opening_brace_start_the_block(self) -> None:
        (d,) = self.parse_one(". {\n dir a { b c\n  d\n }\n}").directives
        self.assertEqual(d.values, ["a"])
        assert d.block is not None
        self.assertEqual([(x.name, x.values) for x in d.block], [("b", ["c"]), ("d", [])])

    def test_brace_on_the_next_line_opens_the_block_of_the_line_before(self) -> None:
        # caddy counts a "{" that starts a line as part of the directive above it.
        (d,) = self.parse_one(". {\n dir a\n {\n  x\n }\n}").directives
        self.assertEqual(d.values, ["a"])
        assert d.block is not None
        self.assertEqual([x.name for x in d.block], ["x"])
        assert d.open_brace is not None
        self.assertEqual(d.open_brace.line, 3)

    def test_words_after_a_closing_brace_start_a_new_line(self) -> None:
        dir_, y = self.parse_one(". {\n dir { x } y z\n}").directives
        assert dir_.block is not None
        self.assertEqual([x.name for x in dir_.block], ["x"])
        self.assertEqual((y.name, y.values), ("y", ["z"]))

    def test_words_after_a_closing_brace_are_checked_as_directives(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            parse(". {\n dir { x } y z\n}", directives={"dir"})
        self.assertRegex(str(cm.exception), "Corefile:2 - Error during parsing: Unknown directive 'y'")

    def test_quoted_argument_spanning_lines(self) -> None:
        d, e = self.parse_one('. {\n dir "q\nq" x\n e\n}').directives
        self.assertEqual(d.values, ["q\nq", "x"])
        self.assertEqual((e.name, e.line), ("e", 4))

    def test_block_without_braces_runs_to_the_end(self) -> None:
        block = self.parse_one("example.org:1053\nwhoami\nlog {\n class all\n}\nerrors")
        self.assertEqual([d.name for d in block.directives], ["whoami", "log", "errors"])

    def test_unclosed_server_block_whose_last_directive_ends_in_a_brace(self) -> None:
        # caddy checks only that the last word read is "}", so this passes there, and here.
        (d,) = self.parse_one("a {\n dir {\n }\n").directives
        self.assertEqual(d.block, [])

    def test_each_line_of_a_directive_block_is_a_directive(self) -> None:
        (d,) = self.parse_one(
            ". {\n hosts {\n  10.0.0.1 a.example\n  10.0.0.2 b.example\n  fallthrough\n }\n}"
        ).directives
        assert d.block is not None
        self.assertEqual(
            [(x.name, x.values) for x in d.block],
            [
                ("10.0.0.1", ["a.example"]),
                ("10.0.0.2", ["b.example"]),
                ("fallthrough", []),
            ],
        )


class TestSnippets(ParserCase):
    def test_caddy_snippets(self) -> None:
        text = "\n(common) {\n\tgzip foo\n\terrors stderr\n}\nhttp://example.com {\n\timport common\n}\n"
        (block,) = parse(text)
        self.assertEqual(block.key_texts, ["http://example.com"])
        self.assertEqual(
            [(d.name, d.values) for d in block.directives], [("gzip", ["foo"]), ("errors", ["stderr"])]
        )
        # Replayed tokens keep where they were written.
        self.assertEqual(block.directives[0].line, 3)

    def test_snippet_braces_on_the_next_line(self) -> None:
        (block,) = parse("(s)\n{\n log\n}\n. {\n import s\n}")
        self.assertEqual([d.name for d in block.directives], ["log"])

    def test_snippet_inside_a_directive_block(self) -> None:
        text = "(s) {\n foo bar\n baz\n}\n. {\n dir {\n  x\n  import s\n  y\n }\n}"
        (d,) = self.parse_one(text).directives
        assert d.block is not None
        # The replayed lines (2, 3) come after line 7: lines are told apart by exact line numbers.
        self.assertEqual(
            [(x.name, x.values) for x in d.block], [("x", []), ("foo", ["bar"]), ("baz", []), ("y", [])]
        )

    def test_snippet_used_twice(self) -> None:
        blocks = parse("(s) {\n log\n}\na {\n import s\n}\nb {\n import s\n}")
        self.assertEqual([[d.name for d in b.directives] for b in blocks], [["log"], ["log"]])

    def test_empty_snippet(self) -> None:
        self.assertEqual(self.parse_one("(s) {\n}\na {\n import s\n}").directives, [])

    def test_snippet_as_keys(self) -> None:
        (block,) = parse("(k) {\n a.example b.example {\n  log\n }\n}\nimport k")
        self.assertEqual(block.key_texts, ["a.example", "b.example"])

    def test_snippet_definitions_are_not_blocks(self) -> None:
        self.assertEqual(parse("(a) {\n log\n}\n(b) {\n errors\n}"), [])

    def test_undefined_snippet_is_looked_up_as_a_file(self) -> None:
        with self.assertRaises(CorefileError) as cm:
            parse(". {\n import nosuchsnippet\n}", "/nonexistent-dir/Corefile")
        self.assertRegex(str(cm.exception), "File to import not found: nosuchsnippet")

    def test_snippet_cycle_through_two_snippets(self) -> None:
        self.patch(corefile_parser, "MAX_SNIPPET_EXPANSIONS", 10)
        with self.assertRaises(CorefileError) as cm:
            parse("(a) {\n x\n import b\n}\n(b) {\n x\n import a\n}\n. {\n import a\n}")
        self.assertTrue(
            str(cm.exception).endswith("Error during parsing: maximum snippet import depth (10) exceeded"),
            str(cm.exception),
        )


class TestImportToken(ParserCase):
    def test_import_in_argument_position_is_a_word(self) -> None:
        (d,) = self.parse_one(". {\n basicauth / import password\n}").directives
        self.assertEqual(d.values, ["/", "import", "password"])

    def test_import_as_a_property_inside_a_block_is_expanded(self) -> None:
        (d,) = self.parse_one("(s) {\n p 1\n}\n. {\n proxy {\n  import s\n  transparent\n }\n}").directives
        assert d.block is not None
        self.assertEqual([x.name for x in d.block], ["p", "transparent"])


class TestServerBlocks(ParserCase):
    def test_parse_returns_server_blocks_with_tokens(self) -> None:
        (block,) = parse("example.org:53 {\n whoami\n}", "Corefile")
        self.assertEqual(block.keys, [Token("example.org:53", "Corefile", 1)])
        self.assertEqual(block.directives_named("whoami")[0].token, Token("whoami", "Corefile", 2))
