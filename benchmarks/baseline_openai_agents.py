"""Baseline for benchmark 1: the OpenAI Agents SDK's `MCPServerManager` on the same 8-server scenario.

Runs in its own venv (openai-agents pins its own mcp), never imports `sidecar`:

    python3 -m venv .cache/bench-baseline
    .cache/bench-baseline/bin/pip install openai-agents
    .cache/bench-baseline/bin/python benchmarks/baseline_openai_agents.py --server-python .venv/bin/python

Eight `MCPServerStdio` servers: seven healthy ones (`--healthy`: the npm reference server
`server-everything` under node by default, or benchmarks/tiny_server.py, or
tests/servers/behaving.py run by `--server-python`, which needs the mcp SDK) and one
`behaving.py --hang-at-initialize`; connect timeout 5 s.
For `connect_in_parallel=True` and `False` it times `async with MCPServerManager(...)`
until entered, counts active and failed servers, and times leaving. Prints a human
summary and one `RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # nothing may leave this machine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    HEALTHY_KINDS,
    SERVER_MARKERS,
    children,
    default_healthy_kind,
    healthy_server,
    hung_server,
    is_dead,
    kill_ours,
    result_line,
    wait_until_async,
)
from agents import set_tracing_disabled
from agents.mcp import MCPServerManager, MCPServerStdio

SERVERS = 8
HUNG = 3  # the hung server sits in the middle: in sequential mode, 3 connect before it and 4 after
CONNECT_TIMEOUT = 5.0


async def one_run(kind: str, server_python: str, parallel: bool, workdir: Path) -> dict:
    hung_pidfile = workdir / "hung.pid"
    servers = []
    for i in range(SERVERS):
        name = f"s{i}"
        if i == HUNG:
            command, args = hung_server(hung_pidfile, server_python)
        else:
            command, args = healthy_server(kind, name, server_python)
        servers.append(
            MCPServerStdio(
                params={"command": command, "args": args},
                name=name,
                client_session_timeout_seconds=CONNECT_TIMEOUT,
            )
        )
    manager = MCPServerManager(servers, connect_timeout_seconds=CONNECT_TIMEOUT, connect_in_parallel=parallel)
    started = time.perf_counter()
    async with manager:
        ready = time.perf_counter() - started
        active = [s.name for s in manager.active_servers]
        failed = [s.name for s in manager.failed_servers]
        errors = {s.name: f"{type(e).__name__}: {e}"[:160] for s, e in manager.errors.items()}
        leaving = time.perf_counter()
    exit_time = time.perf_counter() - leaving

    def alive() -> list[int]:
        pids = [pid for pid, state in children() if state != "Z"]
        try:
            hung = int(hung_pidfile.read_text())
        except (FileNotFoundError, ValueError):  # not started, or the pid not written yet
            return pids
        return pids if is_dead(hung) or hung in pids else [*pids, hung]

    # late exits get up to 0.2 s to land before counting
    await wait_until_async(lambda: not alive(), timeout=0.2)
    left = alive()
    kill_ours(left, *SERVER_MARKERS)
    return {
        "ready": ready,
        "active": len(active),
        "failed": failed,
        "hung_failed": failed == [f"s{HUNG}"],
        "errors": errors,
        "exit": exit_time,
        "leftover": len(set(left)),
    }


async def main_async(args: argparse.Namespace) -> dict:
    set_tracing_disabled(True)
    logging.getLogger("openai.agents").setLevel(logging.CRITICAL)
    results: dict = {
        "openai_agents_version": version("openai-agents"),
        "mcp_version": version("mcp"),
        "connect_timeout": CONNECT_TIMEOUT,
        "healthy": args.healthy,
    }
    for mode in ("parallel", "sequential"):
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
                runs.append(await one_run(args.healthy, args.server_python, mode == "parallel", Path(tmp)))
        readies = [r["ready"] for r in runs]
        results[mode] = {
            "runs": runs,
            "ready_median": statistics.median(readies),
            "ready_max": max(readies),
            "over_timeout_median": statistics.median(readies) - CONNECT_TIMEOUT,
            "all_correct": all(r["active"] == SERVERS - 1 and r["hung_failed"] for r in runs),
            "leftover": sum(r["leftover"] for r in runs),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-python", default=sys.executable, help="python that runs behaving.py")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--healthy", choices=HEALTHY_KINDS, default=default_healthy_kind())
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    for mode in ("parallel", "sequential"):
        r = results[mode]
        print(
            f"openai-agents {results['openai_agents_version']} {mode}: "
            f"ready median {r['ready_median']:.2f} s "
            f"(timeout + {r['over_timeout_median']:.2f} s), max {r['ready_max']:.2f} s, "
            f"correct={r['all_correct']}, exit {[round(x['exit'], 2) for x in r['runs']]} s, "
            f"leftover {r['leftover']}"
        )
    stray = [pid for pid, state in children() if state != "Z"]
    results["stray_children"] = len(stray)
    print(result_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
