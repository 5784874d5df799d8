"""Every integration test runs under the leak guard: no child process may outlive it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_children(leak_guard: object) -> None:
    """Activates `leak_guard` (tests/conftest.py) for every test here; it checks at teardown."""
