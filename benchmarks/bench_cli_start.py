"""How long the commands a person types take: `mcp-sidecar --version` and `check -c FILE`.

    .venv/bin/python benchmarks/bench_cli_start.py                 # 20 runs each
    .venv/bin/python benchmarks/bench_cli_start.py --runs 50
    .venv/bin/python benchmarks/bench_cli_start.py --tree /path/to/other/checkout   # compare

Runs the installed `mcp-sidecar` script next to this interpreter (as a shell would), or with
`--tree`, `python -m sidecar` from that source tree; each run a fresh process. Prints the
median, p90 and max of the wall clock (spawn to exit), and the median CPU time (user + sys)
of the process, which a busy machine inflates far less than the wall clock.
Exit status 1 if a wall-clock median misses its goal (issue #8: 0.3 s and 0.6 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, secs, summary

GOALS = {"--version": 0.3, "check": 0.6}


def command(tree: Path | None) -> tuple[list[str], Path]:
    """The argv prefix that runs the CLI, and the directory to run it in."""
    if tree is not None:
        return [sys.executable, "-m", "sidecar"], tree  # -m: the tree's own package comes first
    script = Path(sys.executable).parent / "mcp-sidecar"
    return ([str(script)] if script.is_file() else [sys.executable, "-m", "sidecar"]), REPO


def time_runs(argv: list[str], cwd: Path, runs: int) -> tuple[list[float], list[float]]:
    """(wall clock, CPU time) of each run, in seconds."""
    subprocess.run(argv, cwd=cwd, capture_output=True, check=True, timeout=60)  # warm the page cache
    walls, cpus = [], []
    for _ in range(runs):
        before = os.times()
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=True, timeout=60)
        walls.append(time.perf_counter() - started)
        after = os.times()
        cpus.append(
            (after.children_user - before.children_user) + (after.children_system - before.children_system)
        )
    return walls, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tree", type=Path, help="run `python -m sidecar` from this source tree instead")
    args = parser.parse_args()
    base, cwd = command(args.tree)
    cases = {
        "--version": [*base, "--version"],
        "check": [*base, "check", "-c", str(REPO / "examples" / "demo.yaml")],
    }
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    ok = True
    for name, argv in cases.items():
        walls, cpus = time_runs(argv, cwd, args.runs)
        stats = summary(walls)
        met = stats["median"] <= GOALS[name]
        ok &= met
        print(
            f"mcp-sidecar {name}: median {secs(stats['median'])}, p90 {secs(stats['p90'])}, "
            f"max {secs(stats['max'])}, CPU median {secs(statistics.median(cpus))} ({stats['n']} runs; "
            f"goal median <= {GOALS[name]:g} s: {'met' if met else 'NOT met'})",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
