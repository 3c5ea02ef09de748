"""Go's time.ParseDuration and Duration.String, as twisted_coredns.duration re-makes them.

The tables follow Go's own tests (src/time/time_test.go: parseDurationTests,
parseDurationErrorTests, durationTests), so a Corefile duration means here what it means in CoreDNS.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_coredns.duration import format_duration, parse_duration, parse_duration_ns

NS = 1
US = 1000 * NS
MS = 1000 * US
S = 1000 * MS
M = 60 * S
H = 60 * M

VALID = [
    ("0", 0),
    ("5s", 5 * S),
    ("30s", 30 * S),
    ("1478s", 1478 * S),
    ("-5s", -5 * S),
    ("+5s", 5 * S),
    ("-0", 0),
    ("+0", 0),
    ("5.0s", 5 * S),
    ("5.6s", 5 * S + 600 * MS),
    ("5.s", 5 * S),
    (".5s", 500 * MS),
    ("1.0s", 1 * S),
    ("1.00s", 1 * S),
    ("1.004s", 1 * S + 4 * MS),
    ("1.0040s", 1 * S + 4 * MS),
    ("100.00100s", 100 * S + 1 * MS),
    ("10ns", 10 * NS),
    ("11us", 11 * US),
    ("12\u00b5s", 12 * US),
    ("12\u03bcs", 12 * US),
    ("13ms", 13 * MS),
    ("14s", 14 * S),
    ("15m", 15 * M),
    ("16h", 16 * H),
    ("3h30m", 3 * H + 30 * M),
    ("10.5s4m", 4 * M + 10 * S + 500 * MS),
    ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
    ("1h2m3s4ms5us6ns", 1 * H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
    ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
    ("52763797000ns", 52763797000 * NS),
    ("0.3333333333333333333h", 20 * M),
    ("9007199254740993ns", (1 << 53) + 1),
    ("9223372036854775807ns", (1 << 63) - 1),
    ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)),
    ("-9223372036854775.808us", -(1 << 63)),
    ("-9223372036s854ms775us808ns", -(1 << 63)),
    ("-2562047h47m16.854775808s", -(1 << 63)),
    ("0.100000000000000000000h", 6 * M),
    ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
]

# (input, Go's full error message)
INVALID = [
    ("", 'time: invalid duration ""'),
    ("3", 'time: missing unit in duration "3"'),
    ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'),
    (".", 'time: invalid duration "."'),
    ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'),
    ("+.s", 'time: invalid duration "+.s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("abc", 'time: invalid duration "abc"'),
    ("1", 'time: missing unit in duration "1"'),
    ("1m1", 'time: missing unit in duration "1m1"'),
    ("5 s", 'time: unknown unit " s" in duration "5 s"'),
    ("1S", 'time: unknown unit "S" in duration "1S"'),
    ('1"s', 'time: unknown unit "\\"s" in duration "1\\"s"'),
    ("\ufffd", 'time: invalid duration "\\xef\\xbf\\xbd"'),
    ("\ufffd hello \ufffd world", 'time: invalid duration "\\xef\\xbf\\xbd hello \\xef\\xbf\\xbd world"'),
    ("1\u00e9", 'time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
    ("9223372036854775810ns", 'time: invalid duration "9223372036854775810ns"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("9223372036854776us", 'time: invalid duration "9223372036854776us"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
    ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
]

# (Go's String(), nanoseconds)
STRINGS = [
    ("0s", 0),
    ("1ns", 1 * NS),
    ("1.1\u00b5s", 1100 * NS),
    ("2.2ms", 2200 * US),
    ("3.3s", 3300 * MS),
    ("4m5s", 4 * M + 5 * S),
    ("4m5.001s", 4 * M + 5001 * MS),
    ("5h6m7.001s", 5 * H + 6 * M + 7001 * MS),
    ("8m0.000000001s", 8 * M + 1 * NS),
    ("2562047h47m16.854775807s", (1 << 63) - 1),
    ("-2562047h47m16.854775808s", -(1 << 63)),
    ("5m0s", 5 * M),
    ("30s", 30 * S),
    ("1h0m0s", 1 * H),
    ("-1.5s", -1500 * MS),
]


class ParseDurationTests(SynchronousTestCase):
    def test_valid(self) -> None:
        for text, want in VALID:
            self.assertEqual(parse_duration_ns(text), want, f"ParseDuration({text!r})")

    def test_seconds(self) -> None:
        self.assertEqual(parse_duration("1m30s"), 90.0)
        self.assertEqual(parse_duration("250ms"), 0.25)
        self.assertEqual(parse_duration("-1.5h"), -5400.0)
        self.assertIsInstance(parse_duration("0"), float)

    def test_invalid(self) -> None:
        for text, message in INVALID:
            with self.assertRaises(ValueError, msg=f"ParseDuration({text!r}) should fail") as caught:
                parse_duration(text)
            self.assertEqual(str(caught.exception), message, f"ParseDuration({text!r})")

    def test_round_trip(self) -> None:
        # Go's TestParseDurationRoundTrip: String() reads back as the same value.
        for value in ((1 << 63) - 1, -(1 << 63), 1234567 * MS, 86399999 * MS, 1, 999 * US):
            self.assertEqual(parse_duration_ns(format_duration(value)), value, format_duration(value))


class FormatDurationTests(SynchronousTestCase):
    def test_go_strings(self) -> None:
        for want, value in STRINGS:
            self.assertEqual(format_duration(value), want, f"Duration({value}).String()")

    def test_float_seconds(self) -> None:
        self.assertEqual(format_duration(300.0), "5m0s")
        self.assertEqual(format_duration(0.5), "500ms")
        self.assertEqual(format_duration(2.0), "2s")
