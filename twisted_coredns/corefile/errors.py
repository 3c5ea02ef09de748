"""Errors raised while reading a Corefile, worded as coredns/caddy words them."""

from __future__ import annotations

from .model import Token


class CorefileError(Exception):
    """A Corefile could not be used. ``str()`` is the full message a user sees."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        return self.message


def parse_error(where: Token | tuple[str, int], msg: str) -> CorefileError:
    """caddy's ``Dispenser.Err``: ``FILE:LINE - Error during parsing: MSG``."""
    file, line = (where.file, where.line) if isinstance(where, Token) else where
    return CorefileError(f"{file}:{line} - Error during parsing: {msg}", file, line)


def syntax_error(where: Token | tuple[str, int], got: str, expected: str) -> CorefileError:
    """caddy's ``Dispenser.SyntaxErr``: ``FILE:LINE - Syntax error: Unexpected token 'X', expecting 'Y'``."""
    file, line = (where.file, where.line) if isinstance(where, Token) else where
    return CorefileError(
        f"{file}:{line} - Syntax error: Unexpected token '{got}', expecting '{expected}'", file, line
    )


def arg_error(token: Token) -> CorefileError:
    """caddy's ``Dispenser.ArgErr`` for the current token ``token``."""
    if token.text == "{":
        return parse_error(token, "Unexpected token '{', expecting argument")
    return parse_error(token, f"Wrong argument count or unexpected line ending after '{token.text}'")
