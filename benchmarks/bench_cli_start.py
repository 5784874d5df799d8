"""How long the commands a person types take: `mcp-sidecar --version` and `check -c FILE`.

    .venv/bin/python benchmarks/bench_cli_start.py            # 20 runs each
    .venv/bin/python benchmarks/bench_cli_start.py --runs 50

Runs the installed `mcp-sidecar` script next to this interpreter (as a shell would), each
run a fresh process, wall clock from spawn to exit; prints median, p90 and max per command.
Exit status 1 if a median misses its goal (issue #8: 0.3 s and 0.6 s).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, secs, summary

GOALS = {"--version": 0.3, "check": 0.6}


def command() -> list[str]:
    script = Path(sys.executable).parent / "mcp-sidecar"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sidecar"]


def time_runs(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, cwd=REPO, capture_output=True, check=True, timeout=60)  # warm the page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, capture_output=True, check=True, timeout=60)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    base = command()
    cases = {
        "--version": [*base, "--version"],
        "check": [*base, "check", "-c", str(REPO / "examples" / "demo.yaml")],
    }
    ok = True
    for name, argv in cases.items():
        stats = summary(time_runs(argv, args.runs))
        met = stats["median"] <= GOALS[name]
        ok &= met
        print(
            f"mcp-sidecar {name}: median {secs(stats['median'])}, p90 {secs(stats['p90'])}, "
            f"max {secs(stats['max'])} ({stats['n']} runs; goal median <= {GOALS[name]:g} s: "
            f"{'met' if met else 'NOT met'})",
            flush=True,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
