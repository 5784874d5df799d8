"""Spawning stdio servers: from the event loop (uvloop's fork) vs the sidecar's spawner threads.

Spawns N children (`setpriv --pdeathsig KILL -- python -c <wait for stdin>`, as the sidecar
wraps its servers) all at once from a process holding a heap about the sidecar's size at
1,000 servers, while a heartbeat task measures how late the loop runs it (lag max and p99).
Each way runs in a fresh process, alternated, so both see the same host.

    .venv/bin/python benchmarks/bench_spawn.py [N [ROUNDS]]     # default 200 children, 2 rounds
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, reference_work_ms, result_line, row, say

HEAP_ITEMS = 2_000_000  # ~300 MB of small strings: fork copies page tables in proportion
HEARTBEAT = 0.005


def _child_argv() -> list[str]:
    argv = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


async def _spawn_all(way: str, n: int) -> dict[str, float]:
    import anyio

    from sidecar.spawn import spawn

    ballast = [str(i) * 5 for i in range(HEAP_ITEMS)]
    argv, lags, processes, done = _child_argv(), [], [], anyio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await anyio.sleep(HEARTBEAT)
            lags.append(time.perf_counter() - started - HEARTBEAT)

    async def one() -> None:
        if way == "loop":
            process = await anyio.open_process(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        else:
            process = await spawn(argv, env={}, cwd=None)
        processes.append(process)

    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat)
        await anyio.sleep(0.1)
        started = time.perf_counter()
        async with anyio.create_task_group() as spawns:
            for _ in range(n):
                spawns.start_soon(one)
        took = time.perf_counter() - started
        await anyio.sleep(0.1)
        done.set()
    for process in processes:
        process.kill()
    for process in processes:
        await process.wait() if way == "loop" else process.wait()
    del ballast
    return {"seconds": took, "lag_max_ms": max(lags) * 1000, "lag_p99_ms": percentile(lags, 99) * 1000}


def _one_run(way: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", way, str(n)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        import anyio

        result = anyio.run(_spawn_all, argv[1], int(argv[2]), backend_options={"use_uvloop": True})
        print(json.dumps(result))
        return 0
    n = int(argv[0]) if argv else 200
    rounds = int(argv[1]) if len(argv) > 1 else 2
    results: dict[str, list[dict[str, float]]] = {"loop": [], "threads": []}
    for r in range(rounds):
        for way in results:
            reference = reference_work_ms()
            result = _one_run(way, n)
            say(f"round {r + 1}, {way}: {json.dumps(result)}, reference work {reference:.1f} ms")
            results[way].append(result)
    rows = []
    for way, runs in results.items():
        what = "from the event loop (uvloop)" if way == "loop" else "from the spawner threads (sidecar.spawn)"
        measured = "; ".join(
            f"{run['seconds']:.2f} s, loop lag max {run['lag_max_ms']:.0f} ms (p99 {run['lag_p99_ms']:.0f})"
            for run in runs
        )
        worst = max(run["lag_max_ms"] for run in runs)
        rows.append(row(f"spawn-{way}", f"{n} stdio children spawned at once, {what}", "loop lag <= 100 ms",
                        measured, worst <= 100, runs=runs))  # fmt: skip
    print(result_line({"rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
