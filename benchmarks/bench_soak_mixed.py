"""Kill/restart cycles over stdio and streamable-HTTP servers of both eras: nothing may grow.

Four raw JSON-RPC stdio servers (`tiny_server.py`) and sixteen HTTP endpoints on one
`many_servers.py` host (half spoken to in the initialize era, half in 2026-07-28). A
round either SIGKILLs one stdio server, or (every fifth round) SIGKILLs the HTTP host
and starts it again on the same port, which ends sixteen connections at once. Each
round waits until every server is active again. A cycle is one server lost and back.

Open fds, RSS, child processes and asyncio tasks are sampled after a warm-up (the first
rounds of each kind) and at the end: issue #11 asks for growth <= 5%.

    .venv/bin/python benchmarks/bench_soak_mixed.py [CYCLES]     # default 1000
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LOCALHOST, TINY, children, free_port, open_fds, port_open, result_line, row, rss_mb, say

from sidecar import MCPServerManager, ServerConfig

STDIO, HTTP, HTTP_EVERY = 4, 16, 5
ROUND_DEADLINE = 30.0
FAST = {
    "health": {"interval": 0.2, "timeout": 1.0, "failure_threshold": 3},
    "reconnect": {"initial_backoff": 0.02, "max_backoff": 0.1, "jitter": 0.5},
}


def _configs(http_port: int) -> list[ServerConfig]:
    stdio = [
        ServerConfig(
            name=f"t{i}", transport="stdio", command=sys.executable, args=["-I", "-S", str(TINY)], **FAST
        )
        for i in range(STDIO)
    ]
    http = [
        ServerConfig(
            name=f"h{i}",
            transport="streamable-http",
            url=f"http://{LOCALHOST}:{http_port}/h{i}/mcp",
            protocol="legacy" if i % 2 else "auto",
            **FAST,
        )
        for i in range(HTTP)
    ]
    return stdio + http


def resources() -> dict[str, int]:
    kids = [pid for pid, state in children() if state != "Z"]
    return {
        "fds": open_fds(),
        "rss_kb": round(rss_mb() * 1024),
        "children": len(kids),
        "tasks": len(asyncio.all_tasks()),
    }


class _Host:
    """The HTTP host process, restartable on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: Process | None = None

    async def start(self) -> None:
        self.process = await anyio.open_process(
            [sys.executable, str(Path(__file__).with_name("many_servers.py")), "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with anyio.fail_after(ROUND_DEADLINE):
            while not port_open(self.port):
                await anyio.sleep(0.02)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            with anyio.fail_after(10):
                await self.process.wait()


async def _all_active(manager: MCPServerManager, total: int) -> None:
    with anyio.fail_after(ROUND_DEADLINE):
        while len(manager.active_servers) < total:
            await anyio.sleep(0.01)


async def soak(cycles: int, rng: random.Random | None = None) -> dict[str, Any]:
    """Run until at least `cycles` servers have been lost and come back; resources before and after."""
    rng = rng or random.Random(0)
    host = _Host()
    await host.start()
    total = STDIO + HTTP
    done, rounds, lost_seen = 0, 0, 0
    warm: dict[str, int] | None = None
    started = time.perf_counter()
    try:
        async with MCPServerManager(_configs(host.port)) as manager:
            await _all_active(manager, total)
            sub = manager.subscribe(max_buffer=100_000)
            while done < cycles:
                rounds += 1
                lost_seen += _drain(sub)["lost"]  # events from before this round are not its answer
                if rounds % HTTP_EVERY == 0:
                    await host.kill()
                    await host.start()
                    victims = {f"h{i}" for i in range(HTTP)}
                else:
                    victim = manager.status(f"t{rng.randrange(STDIO)}")
                    assert victim.pid is not None, victim
                    os.kill(victim.pid, signal.SIGKILL)
                    victims = {victim.name}
                done += len(victims)
                with anyio.fail_after(ROUND_DEADLINE):  # each victim is connected again, anew
                    while victims:
                        seen = _drain(sub)
                        lost_seen += seen["lost"]
                        victims -= seen["connected"]
                        await anyio.sleep(0.005)
                await _all_active(manager, total)
                if rounds == 2 * HTTP_EVERY:  # both kinds of round have run twice: warm
                    warm = await _settled_resources()
            end = await _settled_resources()
            dropped = sub.dropped
            sub.close()
    finally:
        with anyio.CancelScope(shield=True):
            await host.kill()
    assert warm is not None, "too few cycles to warm up"
    return {
        "cycles": done,
        "rounds": rounds,
        "lost_events": lost_seen,
        "dropped_events": dropped,
        "seconds": time.perf_counter() - started,
        "warm": warm,
        "end": end,
    }


def _drain(sub: Any) -> dict[str, Any]:
    """What the buffered events say: how many losses, and which servers connected."""
    lost, connected = 0, set()
    while True:
        try:
            event = sub.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            return {"lost": lost, "connected": connected}
        lost += event.kind == "lost"
        if event.kind == "connected":
            connected.add(event.server)


async def _settled_resources() -> dict[str, int]:
    """Resources once killed children are reaped (the event loop reaps them shortly after).

    The fds are the fewest seen over a second: a probe in flight or a pooled keep-alive
    connection not yet closed is a socket for a moment, and a leak is there in every sample.
    """
    with anyio.move_on_after(5):
        while any(state == "Z" for _, state in children()):
            await anyio.sleep(0.01)
    sample = resources()
    for _ in range(10):
        await anyio.sleep(0.1)
        sample["fds"] = min(sample["fds"], open_fds())
    return sample


def growth(warm: dict[str, int], end: dict[str, int]) -> dict[str, float]:
    """Relative growth per resource, from the warm sample to the end."""
    return {key: (end[key] - warm[key]) / warm[key] if warm[key] else float(end[key]) for key in warm}


def main(argv: list[str]) -> int:
    cycles = int(argv[0]) if argv else 1000
    r = anyio.run(soak, cycles, backend="asyncio")
    g = growth(r["warm"], r["end"])
    say(f"  warm: {r['warm']}")
    say(f"  end:  {r['end']}  after {r['cycles']} cycles in {r['rounds']} rounds, {r['seconds']:.1f} s")
    say("  growth: " + ", ".join(f"{k} {v * 100:+.1f}%" for k, v in g.items()))
    ok = all(v <= 0.05 for v in g.values())
    measured = (
        f"{r['cycles']} cycles ({r['lost_events']} losses seen) in {r['seconds']:.0f} s; warm -> end: "
        + ", ".join(f"{k} {r['warm'][k]} -> {r['end'][k]} ({g[k] * 100:+.1f}%)" for k in g)
    )
    bound = "growth <= 5% for each"
    claim = f"kill/restart cycles over {STDIO} stdio and {HTTP} HTTP servers (both eras)"
    print(result_line({"rows": [row("soak", claim, bound, measured, ok, **r)]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
