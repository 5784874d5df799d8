"""Run every benchmark, each in its own process with a deadline, and print one table.

    python benchmarks/run_all.py                 # all (about 4-5 minutes on 2 cores)
    python benchmarks/run_all.py kill_latency soak
    python benchmarks/run_all.py --json results.json

Each benchmark is `benchmarks/bench_manager.py NAME` (or `bench_metrics.py`, `bench_http_death.py`,
`bench_gateway.py`, `bench_side_by_side.py`) in a
fresh interpreter (so fd, task and child-process counts are its own), in its own process
group, killed if it overruns.
Exit status: 0 when every claim with a verdict was met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import selectors
import signal
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_DIR, REPO, row

MANAGER, METRICS = BENCH_DIR / "bench_manager.py", BENCH_DIR / "bench_metrics.py"
STREAMS = BENCH_DIR / "bench_http_death.py"
GATEWAY = BENCH_DIR / "bench_gateway.py"
SIDE_BY_SIDE = BENCH_DIR / "bench_side_by_side.py"

# name -> (script, deadline in s). The baseline runs inside `ready` when .cache/bench-baseline exists.
BENCHMARKS = {
    "ready": (MANAGER, 200),
    "ready_sdk": (MANAGER, 60),
    "die_after_connect": (MANAGER, 60),
    "kill_latency": (MANAGER, 90),
    "stop_detection": (MANAGER, 90),
    "http_restart": (MANAGER, 60),
    "cli_shutdown": (MANAGER, 150),
    "soak": (MANAGER, 90),
    "render_1000": (METRICS, 60),
    "kill_to_metrics": (METRICS, 90),
    "http_death": (STREAMS, 300),
    "list_change": (STREAMS, 120),
    "gateway_overhead": (GATEWAY, 120),
    "gateway_failover": (GATEWAY, 120),
    # the contenders' part only (about 4 minutes); the gateway-vs-fastmcp part is `make bench-gateway`
    "side_by_side": (SIDE_BY_SIDE, 400),
}
TOTAL_BUDGET = 1200.0  # past this, remaining benchmarks are skipped


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mcp = version("mcp")
    except PackageNotFoundError:
        mcp = "?"
    return {
        "date": datetime.date.today().isoformat(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "mcp": mcp,
        "kernel": platform.release(),
    }


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_one(
    name: str, script: Path, deadline: float, argv: list[str] | None = None
) -> tuple[list[dict[str, Any]], float, str | None]:
    """(rows, seconds, error) of one benchmark, its output echoed as it comes. `argv` replaces
    the default command line (`python -u SCRIPT NAME`): another interpreter, other arguments.

    Its process group (the benchmark and whatever it started) is SIGKILLed on every way out while the
    benchmark still runs: deadline, unreadable RESULT line, Ctrl-C. Output is read with os.read, so a
    partial line cannot block past the deadline."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv or [sys.executable, "-u", str(script), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    assert process.stdout is not None
    fd = process.stdout.fileno()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            pending = b""
            eof = False
            while not eof:
                left = deadline - (time.perf_counter() - started)
                if left <= 0:
                    raise TimeoutError
                if not selector.select(timeout=min(left, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                eof = not chunk
                *lines, pending = (pending + chunk).split(b"\n")
                if eof and pending:
                    lines.append(pending)
                for raw in lines:
                    line = raw.decode(errors="replace")
                    if not line.startswith("RESULT "):
                        print(line, flush=True)
                        continue
                    try:
                        rows = json.loads(line[len("RESULT ") :])["rows"]
                    except (ValueError, KeyError, TypeError) as e:
                        errors.append(f"unreadable RESULT line ({type(e).__name__}: {e})"[:200])
        code = process.wait(timeout=max(1.0, deadline - (time.perf_counter() - started)))
        if code != 0:
            errors.append(f"exited with code {code}")
    except (TimeoutError, subprocess.TimeoutExpired):
        errors.append(f"did not finish within {deadline:g} s; killed")
    finally:
        if process.poll() is None:  # not yet reaped, so its pid is still its group's id
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its own group: the benchmark and what it started
            process.wait()
        process.stdout.close()
    return rows, time.perf_counter() - started, "; ".join(errors) or None


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else "met" if ok else "NOT MET"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| # | claim | bound | measured | verdict |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [r["bench"], r["claim"], r["bound"], r["measured"], verdict(r["ok"])]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", metavar="PATH", help="also write every row, with its raw data, here")
    args = parser.parse_args()
    names = args.names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    info = machine()
    print(
        f"mcp-sidecar benchmarks, {info['date']}: {info['nproc']} x {info['cpu']}, Python {info['python']}, "
        f"mcp {info['mcp']}, kernel {info['kernel']}; load average before: {load()}",
        flush=True,
    )
    started = time.perf_counter()
    all_rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for name in names:
        remaining = TOTAL_BUDGET - (time.perf_counter() - started)
        if remaining < 10:
            all_rows.append(
                row(name, f"benchmark {name}", "-", "skipped: the total time budget is spent", False)
            )
            continue
        print(f"\n== {name}", flush=True)
        script, deadline = BENCHMARKS[name]
        rows, seconds, error = run_one(name, script, min(deadline, remaining))
        timings[name] = seconds
        all_rows.extend(rows)
        if error is not None:
            all_rows.append(row(name, f"benchmark {name}", "-", error, False))
        print(f"   ({seconds:.1f} s)", flush=True)
    total = time.perf_counter() - started
    print(f"\n{table(all_rows)}\n")
    print(f"total {total:.0f} s; per benchmark: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"load average after: {load()}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": info, "total": total, "timings": timings, "rows": all_rows}, indent=1)
        )
    return 0 if all(r["ok"] is not False for r in all_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
