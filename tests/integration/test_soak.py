"""The soak, reduced: kill/restart cycles over stdio and HTTP servers of both eras grow nothing.

The full 1,000-cycle run is `benchmarks/bench_soak_mixed.py`; this is the same code at 120.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_soak_mixed import growth, soak

pytestmark = pytest.mark.anyio


@pytest.mark.timeout(240)
async def test_kill_restart_cycles_leave_nothing_behind() -> None:
    result = await soak(120)
    assert result["cycles"] >= 120
    assert result["lost_events"] >= 120  # every cycle really was a loss the manager saw
    warm, end = result["warm"], result["end"]
    assert end["children"] == warm["children"], result
    # The issue's bound, growth <= 5%: a shared test process holds other tests' fds and tasks
    # too, and a loaded machine reaps and closes a little later.
    grown = growth(warm, end)
    assert all(grown[key] <= 0.05 for key in ("fds", "tasks", "rss_kb")), result
