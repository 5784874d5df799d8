"""Make text safe for output: remove secrets (logs, errors, HTTP, spans), escape what a terminal obeys."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

__all__ = ["MASK", "make_redactor", "printable", "redact"]

MASK = "***"

# scheme://user:password@ -> keep the user, mask the password (any scheme: postgres://, redis:// too).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@\s/]+)@")


@lru_cache(maxsize=32)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    # One alternation, longest first: a secret that contains another is masked whole, in a single
    # pass, so the mask itself is never re-matched.
    ordered = sorted(
        {spelling for secret in secrets for spelling in _spellings(secret)}, key=lambda s: (-len(s), s)
    )
    return re.compile("|".join(re.escape(s) for s in ordered))


def _spellings(secret: str) -> set[str]:
    """The secret, and the secret as ``repr`` and JSON write it between their quotes: an exception's
    text (a KeyError quotes its key) or an echoed payload escapes a quote or a backslash in it."""
    return {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


def make_redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """Return a function that redacts ``secrets`` from a string; compile once, use on hot paths."""
    pattern = _pattern(frozenset(s for s in secrets if s))

    def _redact(text: str) -> str:
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "@" not in text:  # no userinfo to mask: skip the regex (most texts, and spans on export)
            return text
        return _USERINFO.sub(rf"\g<head>{MASK}@", text)

    return _redact


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every secret in ``text`` with ``***``, and URL passwords too.

    ``http://user:pass@host`` becomes ``http://user:***@host`` whether or not ``pass`` is a known secret.
    """
    return make_redactor(secrets)(text)


def printable(text: str) -> str:
    """``text`` with every unprintable character as its Python escape (``\\n``, ``\\x1b``, ``\\u202e``).

    For one-line outputs read by people (text log lines, config problems, the status table): a name or
    message from a server or a file must not break the line, forge another, recolour a terminal or
    reorder the text around it. Printable text, other scripts and emoji included, is left as it is.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
