"""The rule for tests that need something outside Python: skip on a laptop, fail in CI."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, what: str) -> None:
    """A missing external (node, a binary, a package) skips locally and fails under CI=true."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{what} is missing (CI=true: a missing dependency is a failure)", pytrace=False)
    pytest.skip(f"{what} is missing")
