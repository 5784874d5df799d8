"""The soak, reduced: kill/restart cycles over stdio and HTTP servers of both eras grow nothing.

The full 1,000-cycle run is `benchmarks/bench_soak_mixed.py`; this runs the same script at 60
cycles, in a fresh interpreter of its own, so that what it measures (fds, RSS, children,
tasks) is the manager's and not what other tests left in the pytest process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_soak_mixed.py"


def test_kill_restart_cycles_leave_nothing_behind() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "60"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    (row,) = json.loads(line.removeprefix("RESULT "))["rows"]
    result = row["data"]
    assert result["cycles"] >= 60
    assert result["lost_events"] >= 60  # every cycle really was a loss the manager saw
    warm, end = result["warm"], result["end"]
    assert end["children"] == warm["children"], (warm, end)
    for key in ("fds", "tasks", "rss_kb"):  # the bound: growth <= 5%
        assert end[key] <= warm[key] * 1.05, (key, warm, end)
    assert row["ok"], row["measured"]
