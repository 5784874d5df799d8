"""A cancellation grouped with a server's error is never taken for the server's failure."""

from __future__ import annotations

import anyio
import pytest

from sidecar.supervisor import _cancellation

pytestmark = pytest.mark.anyio


async def test_cancellation_is_found_in_a_group_with_errors() -> None:
    cancelled = anyio.get_cancelled_exc_class()()
    group = BaseExceptionGroup("transport", [OSError("reset"), BaseExceptionGroup("inner", [cancelled])])
    assert _cancellation(group) is cancelled


async def test_errors_alone_carry_no_cancellation() -> None:
    assert _cancellation(ExceptionGroup("transport", [OSError("reset"), ValueError("bad")])) is None
    assert _cancellation(OSError("reset")) is None
