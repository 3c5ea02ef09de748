"""The Corefile dialect of coredns/caddy: lexer, parser, imports, snippets."""

from __future__ import annotations

from .errors import CorefileError, arg_error, parse_error, syntax_error
from .lexer import tokenize
from .model import Directive, ServerBlock, Token
from .parser import parse, parse_file

__all__ = [
    "CorefileError",
    "Directive",
    "ServerBlock",
    "Token",
    "arg_error",
    "parse",
    "parse_error",
    "parse_file",
    "syntax_error",
    "tokenize",
]
