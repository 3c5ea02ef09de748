"""{$VAR} and {%VAR%}: coredns/caddy's TestEnvironmentReplacement and what its replaceEnvVars does."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.corefile import CorefileError, ServerBlock, parse

ENV = {"PORT": "8080", "ADDRESS": "servername.com", "FOOBAR": "foobar", "PARTIAL_DIR": "r1"}


def parse_env(text: str, env: dict[str, str] | None = None) -> list[ServerBlock]:
    return parse(text, env=ENV if env is None else env)


# caddy's TestEnvironmentReplacement, on keys.
CADDY_KEYS = [
    ("{$ADDRESS}", "servername.com"),
    ("di{$PARTIAL_DIR}", "dir1"),
    ("{$ADDRESS}:{$PORT}", "servername.com:8080"),
    ("{%ADDRESS%}:{$PORT}", "servername.com:8080"),
    ("{$ADDRESS}:{%PORT%}", "servername.com:8080"),
    (":{%PORT%}\ndir1 {$FOOBAR}", ":8080"),
    # An unset variable is empty.
    (":{$PORT$}", ":"),
]

# caddy's TestEnvironmentReplacement, on the first argument of a directive.
CADDY_ARGUMENTS = [
    (":{%PORT%}\ndir1 {$FOOBAR}", "foobar"),
    (":{%PORT%}\ndir1 {%ADDRESS%}/{%FOOBAR%}", "servername.com/foobar"),
    # A malformed reference stays as written.
    (":1234\ndir1 {%ADDRESS}", "{%ADDRESS}"),
    # Quoted words are expanded too.
    (':1234\ndir1 "Test {$FOOBAR} test"', "Test foobar test"),
    # Text that only looks like a reference is left alone.
    (':1234\nanswer "{{ .Name }} {$FOOBAR}"', "{{ .Name }} foobar"),
]

# A word, and what it expands to.
REPLACEMENT_RULES = [
    ("{$}", "{$}"),  # an empty name stops the replacement
    ("{%%}", "{%%}"),
    ("{%}", "{%}"),
    ("{$FOOBAR}{$}{$PORT}", "foobar{$}{$PORT}"),
    ("{$UNSET}x", "x"),
    ("{$FOOBAR", "{$FOOBAR"),
    ("x{$FOOBAR}y{$FOOBAR}", "xfoobaryfoobar"),
    ("{%FOOBAR%}{$PORT}", "foobar8080"),
]


class EnvironmentTests(SynchronousTestCase):
    def set_environ(self, name: str, value: str | None) -> None:
        """Set (or, with None, unset) an environment variable until the test ends."""
        old = os.environ.get(name)

        def restore() -> None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old

        self.addCleanup(restore)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def test_caddy_keys(self) -> None:
        for row in CADDY_KEYS:
            text, key = row
            self.assertEqual(parse_env(text)[0].keys[0].text, key, msg=repr(row))

    def test_caddy_arguments(self) -> None:
        for row in CADDY_ARGUMENTS:
            text, arg = row
            self.assertEqual(parse_env(text)[0].directives[0].args[0].text, arg, msg=repr(row))

    def test_replacement_rules(self) -> None:
        for row in REPLACEMENT_RULES:
            word, expanded = row
            (block,) = parse_env(f". {{\n dir {word}\n}}")
            self.assertEqual(block.directives[0].values, [expanded], msg=repr(row))

    def test_value_with_spaces_stays_one_word(self) -> None:
        (block,) = parse_env(". {\n dir {$V} x\n}", {"V": "a b"})
        self.assertEqual(block.directives[0].values, ["a b", "x"])

    def test_directive_name_is_expanded(self) -> None:
        (block,) = parse_env(". {\n {$D} x\n}", {"D": "log"})
        self.assertEqual(block.directives[0].name, "log")
        with self.assertRaises(CorefileError) as cm:
            parse(". {\n {$D} x\n}", env={"D": "nope"}, directives={"log"})
        self.assertRegex(str(cm.exception), "Unknown directive 'nope'")

    def test_values_are_expanded_again(self) -> None:
        (block,) = parse_env(". {\n dir {$B}\n}", {"A": "x", "B": "{$A}y"})
        self.assertEqual(block.directives[0].values, ["xy"])

    def test_a_value_referring_to_itself_is_an_error_not_a_hang(self) -> None:
        # caddy would loop forever on this.
        with self.assertRaises(CorefileError) as cm:
            parse_env(". {\n dir {$LOOP}\n}", {"LOOP": "x{$LOOP}"})
        self.assertTrue(
            str(cm.exception).startswith(
                "Corefile:2 - Error during parsing: environment variable expansion does not end"
            ),
            str(cm.exception),
        )
        with self.assertRaises(CorefileError):
            parse_env(". {\n dir {$LOOP}\n}", {"LOOP": "{$LOOP}"})

    def test_key_expanding_to_import_imports(self) -> None:
        # caddy compares the expanded key with "import".
        with self.assertRaises(CorefileError) as cm:
            parse("{$I} nothing-here", "/nonexistent-dir/Corefile", env={"I": "import"})
        self.assertRegex(str(cm.exception), "File to import not found: nothing-here")

    def test_braces_come_from_the_words_not_the_values(self) -> None:
        # Structure is decided on the words as written; a value of "{" is just text.
        (block,) = parse_env(". {\n dir {$OPEN} x\n}", {"OPEN": "{"})
        (d,) = block.directives
        self.assertEqual(d.values, ["{", "x"])
        self.assertIsNone(d.block)

    def test_defaults_to_os_environ(self) -> None:
        self.set_environ("TWISTED_COREDNS_TEST_ZONE", "example.org")
        self.set_environ("TWISTED_COREDNS_TEST_UNSET", None)
        (block,) = parse("{$TWISTED_COREDNS_TEST_ZONE} {\n dir {$TWISTED_COREDNS_TEST_UNSET}\n}")
        self.assertEqual(block.key_texts, ["example.org"])
        self.assertEqual(block.directives[0].values, [""])

    def test_names_the_environment_cannot_hold_are_unset(self) -> None:
        (block,) = parse(". {\n dir {$A\ud800B} {$A=B}\n}")
        self.assertEqual(block.directives[0].values, ["", ""])
