"""Secret redaction: known values and URL passwords never reach output."""

from __future__ import annotations

import pytest

from sidecar.redact import make_redactor, redact


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("token=abc123 and abc123 again", ["abc123"], "token=*** and *** again"),
        ("Authorization: Bearer abc123", ["abc123", "Bearer abc123"], "Authorization: ***"),  # longest first
        ("nothing to hide", ["abc123"], "nothing to hide"),
        ("nothing to hide", [], "nothing to hide"),
        ("empty secrets are ignored", ["", ""], "empty secrets are ignored"),
        ("regex chars a.b*c(d)", ["a.b*c(d)"], "regex chars ***"),
        ("no regex meaning: axbbc", ["a.b*c"], "no regex meaning: axbbc"),
        ("overlap: abcdef", ["abcd", "cdef"], "overlap: ***ef"),
        ("connect http://user:pass@host:8000/mcp failed", [], "connect http://user:***@host:8000/mcp failed"),
        ("https://u:p%40ss@h/x and postgres://db:pw@h/d", [], "https://u:***@h/x and postgres://db:***@h/d"),
        (
            "http://user@host/ keeps a user without password",
            [],
            "http://user@host/ keeps a user without password",
        ),
        ("http://host:8000/path@x is not userinfo", [], "http://host:8000/path@x is not userinfo"),
        ("http://user:***@host", [], "http://user:***@host"),  # idempotent
        ("key: s3cr3t in http://me:s3cr3t@h", ["s3cr3t"], "key: *** in http://me:***@h"),
    ],
)
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected


def test_make_redactor_reuses_one_pattern() -> None:
    hide = make_redactor({"alpha-secret", "beta-secret"})
    assert hide("alpha-secret beta-secret gamma") == "*** *** gamma"
    assert hide("") == ""


def test_redact_accepts_any_iterable() -> None:
    assert redact("x-token-x", (s for s in ["token"])) == "x-***-x"
