"""Benchmarks of the event streams, in both protocol eras, against a real streamable-HTTP server.

Run one:  python benchmarks/bench_http_death.py NAME [RUNS]   (NAME: http_death | list_change)

http_death   SIGKILL the server (probes every 5 s, the default), time until the manager
             publishes `lost` (the server is not `active` from then on); 20 runs per era.
list_change  a tool added at run time (`add_tool`, which announces it) until the manager
             publishes `tools_changed` with it; 20 runs per era.

The server is tests/servers/behaving.py --dynamic, restarted on the same port after each
kill; the initialize era is the client's `legacy` mode, 2026-07-28 its `auto` mode. Prints
details and one `RESULT {json}` line, as bench_manager.py does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BEHAVING, LOCALHOST, Row, free_port, ms, port_open, result_line, row, say, summary

from sidecar import MCPServerManager, ServerConfig
from sidecar.events import LifecycleEvent, Subscription

ERAS = (("initialize era", "legacy", "2025-11-25"), ("2026-07-28", "auto", "2026-07-28"))
EVENT_TIMEOUT = 15.0  # no single wait may take longer than this
DEATH_BOUND = 0.100
CHANGE_BOUND = 1.0


class Server:
    """behaving.py --dynamic over streamable HTTP on one port; killed (group SIGKILL) and restarted."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}/mcp"

    def spawn(self) -> None:
        argv = [sys.executable, str(BEHAVING), "--transport", "streamable-http", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, "--dynamic"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )

    async def start(self) -> None:
        self.spawn()
        assert self.process is not None
        with anyio.fail_after(EVENT_TIMEOUT):
            while not port_open(self.port):
                assert self.process.poll() is None, self.log.read_text()[-2000:]
                await anyio.sleep(0.01)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        running = Server(free_port(), Path(tmp) / "server.log")
        try:
            yield running
        finally:
            running.kill()


def config(url: str, protocol: str) -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "name": "web",
            "transport": "streamable-http",
            "url": url,
            "protocol": protocol,
            "connect_timeout": 10.0,
            "health": {"interval": 5.0, "timeout": 2.0, "failure_threshold": 3},  # the defaults
            "reconnect": {"initial_backoff": 0.05, "max_backoff": 0.2, "jitter": 0.0},
        }
    )


async def next_event(sub: Subscription, kind: str, match: Callable[[Any], bool] = lambda e: True) -> tuple:
    """The next event of `kind` that matches, and the perf_counter time it was received."""
    with anyio.fail_after(EVENT_TIMEOUT):
        while True:
            event: LifecycleEvent = await sub.receive()
            if event.kind == kind and match(event):
                return event, time.perf_counter()


async def call(manager: MCPServerManager, tool: str, **arguments: Any) -> Any:
    result = await manager.call_tool("web", tool, arguments)
    assert not result.is_error, result
    return result.structured_content["result"]  # type: ignore[index]


async def stream_open(manager: MCPServerManager, timeout: float = 3.0) -> bool:
    """Whether the server serves our event stream within `timeout` (the SDK opens the GET stream on
    its own time). False for a client that opens none (an older sidecar: a baseline run)."""
    with anyio.move_on_after(timeout):
        while await call(manager, "open_streams") < 1:
            await anyio.sleep(0.01)
        return True
    return False


# -- SIGKILL -> not active --------------------------------------------------------------------------


async def _http_death(protocol: str, version: str, runs: int) -> list[dict[str, Any]]:
    out = []
    with server() as web:
        await web.start()
        async with MCPServerManager([config(web.url, protocol)]) as manager:
            assert manager.active_servers == ["web"], manager.errors
            assert manager.status("web").protocol_version == version
            sub = manager.subscribe()
            for _ in range(runs):
                stream = await stream_open(manager)
                await anyio.sleep(0.05)  # a quiet moment, as in real life
                killed_wall, killed = time.time(), time.perf_counter()
                web.kill()
                lost, received = await next_event(sub, "lost")
                out.append(
                    {
                        "received": received - killed,
                        "emitted": lost.ts - killed_wall,
                        "reason": lost.reason,
                        "active_after": manager.status("web").active,
                        "stream": stream,
                    }
                )
                await web.start()
                await next_event(sub, "connected")
            sub.close()
    return out


def bench_http_death(runs: int = 20) -> list[Row]:
    rows = []
    for era, protocol, version in ERAS:
        results = anyio.run(_http_death, protocol, version, runs, backend="asyncio")
        received = summary([r["received"] for r in results])
        emitted = summary([r["emitted"] for r in results])
        reasons = sorted({r["reason"] for r in results})
        say(f"  {era}: lost after (ms) " + ", ".join(f"{r['received'] * 1000:.1f}" for r in results))
        streams = sum(r["stream"] for r in results)
        say(f"  {era}: reasons {reasons}; an event stream was open before {streams}/{runs} kills")
        rows.append(
            row(
                "s1",
                f"streamable-HTTP server SIGKILLed leaves `active`, {era}, probes every 5 s, {runs} runs",
                f"<= {ms(DEATH_BOUND)}",
                f"median {ms(received['median'])}, p90 {ms(received['p90'])}, max {ms(received['max'])} "
                f"(state change: median {ms(emitted['median'])}); reason {', '.join(reasons)}",
                received["max"] <= DEATH_BOUND and not any(r["active_after"] for r in results),
                era=era,
                received=received,
                emitted=emitted,
                runs=results,
            )
        )
    return rows


# -- a tool added at run time -> tools_changed -------------------------------------------------------


async def _list_change(protocol: str, version: str, runs: int) -> list[dict[str, Any]]:
    out = []
    with server() as web:
        await web.start()
        async with MCPServerManager([config(web.url, protocol)]) as manager:
            assert manager.status("web").protocol_version == version
            await stream_open(manager)
            sub = manager.subscribe()
            for i in range(runs):
                name = f"added_{i}"
                await anyio.sleep(0.05)
                asked = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    answered: list[float] = []

                    async def add(name: str = name, answered: list[float] = answered) -> None:
                        await call(manager, "add_tool", name=name)
                        answered.append(time.perf_counter())

                    tg.start_soon(add)
                    _, seen = await next_event(sub, "tools_changed", lambda e, n=name: n in e.tools)
                out.append({"from_call": seen - asked, "from_answer": seen - answered[0]})
            sub.close()
    return out


def bench_list_change(runs: int = 20) -> list[Row]:
    rows = []
    for era, protocol, version in ERAS:
        results = anyio.run(_list_change, protocol, version, runs, backend="asyncio")
        from_call = summary([r["from_call"] for r in results])
        from_answer = summary([r["from_answer"] for r in results])
        say(
            f"  {era}: seen after (ms from the call) "
            + ", ".join(f"{r['from_call'] * 1000:.1f}" for r in results)
        )
        rows.append(
            row(
                "s2",
                f"tool added at run time (announced in the call) seen as `tools_changed`, {era}, {runs} runs",
                f"<= {ms(CHANGE_BOUND)} from the announcement",
                f"from the call's start: median {ms(from_call['median'])}, max {ms(from_call['max'])}; "
                f"from its answer: median {ms(from_answer['median'])}, max {ms(from_answer['max'])}",
                from_call["max"] <= CHANGE_BOUND,
                era=era,
                from_call=from_call,
                from_answer=from_answer,
                runs=results,
            )
        )
    return rows


BENCHMARKS: dict[str, Callable[..., list[Row]]] = {
    "http_death": bench_http_death,
    "list_change": bench_list_change,
}


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] not in BENCHMARKS or not all(a.isdigit() for a in argv[1:]):
        print(f"usage: {Path(__file__).name} {{{','.join(BENCHMARKS)}}} [RUNS]", file=sys.stderr)
        return 2
    rows = BENCHMARKS[argv[0]](*(int(a) for a in argv[1:]))
    print(result_line({"rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
