"""A slow start on a busy host is waited for, not thrown away (issue #8, item 8).

Seven SDK-built Python stdio servers (behaving.py, ~1.4 s of CPU each to import) start
under a connect timeout (default 5 s) while CPU-bound processes (default four) run beside
the sidecar on a 2-core machine. Prints, per run: when the manager was entered, when the last server was
active, how many were active, and how many connect attempts were thrown away
(ConnectFailed) — with the default grace and with `connect_grace: 0` (the old behaviour)
side by side in the same run.

    .venv/bin/python benchmarks/bench_busy_start.py [RUNS [HOGS [TIMEOUT]]]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import behaving_args, result_line, row, say, secs, summary

from sidecar import MCPServerManager, ServerConfig

SERVERS = 7
SETTLE_DEADLINE = 60.0  # a run that has not settled by then is reported as such
HOG = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"


def _configs(timeout: float, grace: float | None) -> list[ServerConfig]:
    return [
        ServerConfig(
            name=f"s{i}",
            transport="stdio",
            command=sys.executable,
            args=behaving_args("--name", f"s{i}"),
            connect_timeout=timeout,
            connect_grace=grace,
        )
        for i in range(SERVERS)
    ]


async def _run(timeout: float, grace: float | None) -> dict[str, Any]:
    manager = MCPServerManager(_configs(timeout, grace))
    sub = manager.subscribe(max_buffer=10_000)
    started = time.perf_counter()
    failed_attempts = 0
    async with manager:
        entered = time.perf_counter() - started
        with anyio.move_on_after(SETTLE_DEADLINE):
            while len(manager.active_servers) < SERVERS:
                event = await sub.receive()
                failed_attempts += event.kind == "connect_failed"
        all_active = time.perf_counter() - started
        active = len(manager.active_servers)
    sub.close()
    return {"entered": entered, "all_active": all_active, "active": active, "thrown_away": failed_attempts}


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 3
    hog_count = int(argv[1]) if len(argv) > 1 else 4
    timeout = float(argv[2]) if len(argv) > 2 else 5.0
    rows = []
    for label, grace in (("default grace (2 x timeout, >= 30 s)", None), ("connect_grace: 0 (before)", 0.0)):
        results = []
        for i in range(runs):
            hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hog_count)]
            try:
                r = anyio.run(_run, timeout, grace, backend="asyncio")
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait(timeout=10)
            results.append(r)
            say(
                f"  {label}, run {i + 1}: entered {secs(r['entered'])}, all active {secs(r['all_active'])}, "
                f"{r['active']}/{SERVERS} active, {r['thrown_away']} attempts thrown away"
            )
        s = summary([r["all_active"] for r in results])
        good = sum(r["active"] == SERVERS and r["thrown_away"] == 0 for r in results)
        rows.append(
            row(
                "8a" if grace is None else "8b",
                f"{SERVERS} SDK stdio servers, connect timeout {timeout:g} s, {hog_count} CPU hogs: {label}",
                f"{SERVERS}/{SERVERS} active with 0 restarts, every run",
                f"all active: median {secs(s['median'])}, max {secs(s['max'])}; "
                f"runs with {SERVERS}/{SERVERS} and 0 restarts: {good}/{runs}; thrown away per run: "
                + ", ".join(str(r["thrown_away"]) for r in results),
                good == runs,
                runs=results,
            )
        )
    print(result_line({"rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
