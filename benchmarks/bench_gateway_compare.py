"""The gateway beside a direct connection and fastmcp's proxy: latency, load, failures, conformance.

    make bench-gateway                                    # everything (about 4 minutes on 2 cores)
    .venv/bin/python benchmarks/bench_gateway_compare.py --sections latency,conformance
    .venv/bin/python benchmarks/bench_gateway_compare.py --gateway-url http://127.0.0.1:9465/mcp

Columns, all in front of the same upstream (tests/servers/conformance_upstream.py over
streamable HTTP, SSE responses):
- `direct`: the upstream itself;
- `gateway`: mcp-sidecar's gateway with `prefix: ""` (started from this tree when
  `sidecar.gateway` exists; or whatever answers at `--gateway-url`, which must offer
  `test_simple_text` unprefixed; the `kill` section always starts its own sidecars);
- `fastmcp`: fastmcp's `create_proxy` (benchmarks/fastmcp_proxy.py in .cache/bench-fastmcp,
  `make bench-fastmcp`), skipped when that venv is missing.

Sections:
- `latency`: N sequential `test_simple_text` calls on one session, per protocol era: p50, p99, calls/s.
- `load`: C clients (one session each, all in this process) calling for D seconds: calls/s, p50, p99, errors.
- `kill`: the upstream SIGKILLed (stdio and HTTP upstreams, both eras end to end), R times: time
  to a gateway `tools/list` without its tools, and to the change notification a client of that
  era gets (`notifications/tools/list_changed`, or a `subscriptions/listen` event).
- `conformance`: the MCP conformance suite's active server checks through each column.

Everything talks to 127.0.0.1; every process started here runs in its own process group and
is SIGKILLed on the way out. Prints a table and one `RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _common import (
    REPO,
    Row,
    cpu_seconds,
    free_port,
    ms,
    percentile,
    port_open,
    result_line,
    row,
    say,
    wait_until,
)
from conformance_suite import CONFORMANCE_JS, lost, run_suite
from run_all import load as load_average
from run_all import machine

UPSTREAM = REPO / "tests" / "servers" / "conformance_upstream.py"
FASTMCP_PYTHON = REPO / ".cache" / "bench-fastmcp" / "bin" / "python"
FASTMCP_PROXY = REPO / "benchmarks" / "fastmcp_proxy.py"
TOOL = "test_simple_text"
ERAS = ("legacy", "2026-07-28")
SECTIONS = ("latency", "load", "kill", "conformance", "failover")
COLUMNS = ("direct", "gateway", "fastmcp")
CALL_TIMEOUT = 30.0


# -- processes ----------------------------------------------------------------------------------


class Proc:
    """A process of ours in its own group; `kill` SIGKILLs the group and reaps it."""

    def __init__(self, argv: Sequence[str], log: Path, cwd: Path | None = None) -> None:
        self.argv, self.log, self.cwd = list(argv), log, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def serve(stack: contextlib.ExitStack, proc: Proc, port: int, what: str, timeout: float = 30.0) -> Proc:
    """Start `proc`, kill it when `stack` closes, and wait until `port` accepts connections."""
    proc.start()
    stack.callback(proc.kill)
    if not wait_until(lambda: port_open(port) or not proc.alive(), timeout) or not proc.alive():
        raise RuntimeError(f"{what} did not start listening on {port}:\n{proc.tail()}")
    return proc


def upstream(tmp: Path, port: int) -> Proc:
    return Proc([sys.executable, str(UPSTREAM), "--port", str(port)], tmp / f"upstream-{port}.log")


def gateway_built() -> bool:
    """Whether this tree has the gateway (`python -m sidecar` runs from REPO, so this is what runs)."""
    return (REPO / "sidecar" / "gateway.py").is_file()


def sidecar(stack: contextlib.ExitStack, tmp: Path, servers: str, what: str) -> tuple[Proc, str, int]:
    """`mcp-sidecar run` from this tree, `servers` behind its gateway: (process, gateway URL, ops port)."""
    ops, port = free_port(), free_port()
    config = tmp / f"sidecar-{port}.yaml"
    config.write_text(
        f"sidecar:\n  listen: 127.0.0.1:{ops}\n  gateway: {{listen: '127.0.0.1:{port}', path: /mcp}}\n"
        "defaults:\n  connect_timeout: 20s\n  health: {interval: 5s, timeout: 2s}\n"
        "  reconnect: {initial_backoff: 100ms, max_backoff: 500ms, jitter: 0}\n"
        f"servers:\n{servers}"
    )
    argv = [sys.executable, "-m", "sidecar", "run", "-c", str(config), "--log-format", "json"]
    proc = serve(stack, Proc(argv, config.with_suffix(".log"), cwd=REPO), port, what)
    return proc, f"http://127.0.0.1:{port}/mcp", ops


def fastmcp_proxy(stack: contextlib.ExitStack, tmp: Path, upstream_url: str) -> tuple[str, int]:
    """fastmcp's `create_proxy` in front of `upstream_url` (killed when `stack` closes): its URL and pid."""
    port = free_port()
    argv = [str(FASTMCP_PYTHON), str(FASTMCP_PROXY), "--upstream", upstream_url, "--port", str(port)]
    proxy = serve(stack, Proc(argv, tmp / f"fastmcp-{port}.log"), port, "the fastmcp proxy")
    return f"http://127.0.0.1:{port}/mcp", proxy.pid


# -- client side --------------------------------------------------------------------------------


def client(url: str, era: str, **options: Any) -> Client:
    return Client(url, mode=era, cache=None, read_timeout_seconds=CALL_TIMEOUT, **options)  # type: ignore[arg-type]


async def tool_names(session: Client) -> set[str]:
    return {tool.name for tool in (await session.list_tools()).tools}


async def wait_listed(url: str, tool: str, timeout: float = 30.0) -> None:
    """Until `url` lists `tool` (a gateway lists a server only once it is active)."""
    with anyio.fail_after(timeout):
        while True:
            with contextlib.suppress(Exception):
                async with client(url, "legacy") as session:
                    if tool in await tool_names(session):
                        return
            await anyio.sleep(0.1)


async def timed_calls(session: Client, count: int) -> list[float]:
    """Seconds per `test_simple_text` call, `count` calls one after the other."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        result = await session.call_tool(TOOL, {})
        times.append(time.perf_counter() - started)
        if result.is_error:
            raise RuntimeError(f"{TOOL} failed: {result.content}")
    return times


async def latency(url: str, era: str, calls: int, warmup: int, pids: dict[str, int]) -> dict[str, float]:
    """p50, p99, calls/s, and the CPU ms per call of each process in `pids` (ours, so measurable:
    unlike wall-clock time, CPU time hardly moves with what else the machine runs)."""
    async with client(url, era) as session:
        await timed_calls(session, warmup)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        times = await timed_calls(session, calls)
        cpu = {f"cpu_{name}": (cpu_seconds(pid) - before[name]) / calls for name, pid in pids.items()}
    total = sum(times)
    return {
        "n": calls,
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "rate": calls / total,
        **cpu,
    }


async def load(url: str, clients: int, duration: float) -> dict[str, float]:
    """`clients` sessions, opened first (20 at a time), then all calling for `duration` s."""
    times: list[float] = []
    errors: dict[str, int] = {}
    connected = 0
    gate = anyio.Semaphore(20)
    go = anyio.Event()
    deadline = 0.0

    def error(exc: BaseException | str) -> None:
        if isinstance(exc, MCPError):
            name = f"MCPError {exc.code}: {exc.message[:60]}"
        else:
            name = exc if isinstance(exc, str) else type(exc).__name__
        errors[name] = errors.get(name, 0) + 1

    async def one() -> None:
        nonlocal connected
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with gate:
                    session = await stack.enter_async_context(client(url, "legacy"))
                connected += 1
                await go.wait()
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    try:
                        result = await session.call_tool(TOOL, {})
                    except Exception as exc:
                        error(exc)
                        continue
                    if result.is_error:
                        text = next((c.text for c in result.content if isinstance(c, types.TextContent)), "")
                        error(f"isError: {text[:200]}")
                    else:
                        times.append(time.perf_counter() - started)
        except Exception as exc:  # connecting, or closing the session
            error(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(one)
        with anyio.move_on_after(60):
            while connected + sum(errors.values()) < clients:
                await anyio.sleep(0.05)
        deadline = time.perf_counter() + duration
        go.set()
    return {
        "clients": connected,
        "calls": len(times),
        "rate": len(times) / duration,
        "p50": percentile(times, 50) if times else float("nan"),
        "p99": percentile(times, 99) if times else float("nan"),
        "errors": sum(errors.values()),
        "error_kinds": errors,  # type: ignore[dict-item]
    }


# -- kill: upstream SIGKILL to tools gone and to the notification -------------------------------


class Watcher:
    """A client of the gateway that notes when it is told the tool list changed."""

    def __init__(self) -> None:
        self.told: list[float] = []

    def since(self, t0: float) -> float | None:
        later = [t for t in self.told if t >= t0]
        return later[0] - t0 if later else None

    async def on_message(self, message: Any) -> None:
        if isinstance(getattr(message, "root", message), types.ToolListChangedNotification):
            self.told.append(time.perf_counter())

    async def listen(self, session: Client, ready: anyio.Event) -> None:
        async with session.listen(tools_list_changed=True) as subscription:
            ready.set()
            async for _ in subscription:
                self.told.append(time.perf_counter())


async def kill_rounds(
    url: str,
    era: str,
    victim_pid: Callable[[], int],
    kill: Callable[[int], None],
    restart: Callable[[], None],
    rounds: int,
) -> list[dict[str, float | None]]:
    """SIGKILL the victim `rounds` times: seconds to its tools leaving tools/list and to the notification."""
    watcher = Watcher()
    prefix = "victim__"
    results: list[dict[str, float | None]] = []
    options = {"message_handler": watcher.on_message} if era == "legacy" else {}
    async with client(url, era, **options) as session, anyio.create_task_group() as tg:
        if era != "legacy":
            ready = anyio.Event()
            tg.start_soon(watcher.listen, session, ready)
            with anyio.fail_after(10):
                await ready.wait()
        for _ in range(rounds):
            with anyio.fail_after(60):  # the victim is back (a restarted upstream reconnects)
                while f"{prefix}{TOOL}" not in await tool_names(session):
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)  # let the news of its return reach the watcher first
            pid = victim_pid()
            t0 = time.perf_counter()
            kill(pid)
            gone = None
            with anyio.move_on_after(15):
                while any(name.startswith(prefix) for name in await tool_names(session)):
                    await anyio.sleep(0.005)
                gone = time.perf_counter() - t0
            with anyio.move_on_after(5):
                while watcher.since(t0) is None:
                    await anyio.sleep(0.002)
            results.append({"gone": gone, "told": watcher.since(t0)})
            restart()
        tg.cancel_scope.cancel()
    return results


def kill_case(tmp: Path, transport: str, era: str, rounds: int) -> list[dict[str, float | None]]:
    """One sidecar with one `victim` server of `transport`, speaking `era` on both sides."""
    with contextlib.ExitStack() as stack:
        http_port = free_port()
        box: dict[str, Proc] = {}
        if transport == "stdio":
            argv = [str(UPSTREAM), "--transport", "stdio"]
            where = f"transport: stdio, command: '{sys.executable}', args: {argv!r}"
        else:
            box["upstream"] = serve(stack, upstream(tmp, http_port), http_port, "the upstream")
            where = f"transport: streamable-http, url: 'http://127.0.0.1:{http_port}/mcp'"
        servers = f"  - {{name: victim, {where}, protocol: '{era}'}}\n"
        proc, url, _ = sidecar(stack, tmp, servers, "the sidecar")

        def victim_pid() -> int:
            if transport != "stdio":
                return box["upstream"].pid
            from _common import children, cmdline

            found = [pid for pid, _ in children(proc.pid) if "conformance_upstream.py" in cmdline(pid)]
            if len(found) != 1:
                raise RuntimeError(f"expected one stdio upstream under the sidecar, found {found}")
            return found[0]

        def kill(pid: int) -> None:
            if transport == "stdio":
                os.kill(pid, signal.SIGKILL)  # the sidecar's child; the sidecar reaps it
            else:
                box["upstream"].kill()

        def restart() -> None:  # a stdio upstream is respawned by the sidecar itself
            if transport != "stdio":
                box["upstream"] = serve(stack, upstream(tmp, http_port), http_port, "the upstream")

        return anyio.run(kill_rounds, url, era, victim_pid, kill, restart, rounds)


# -- failover: the upstream SIGKILLed and restarted, behind the gateway and behind fastmcp -------

FAILOVER_RESTART, FAILOVER_WINDOW, FAILOVER_RETRY = 1.0, 20.0, 0.25


async def call_outcome(session: Client, deadline: float) -> tuple[str, float]:
    """(`ok`, `error result`, `no answer` or the exception's type, seconds) of one call."""
    started = time.perf_counter()
    try:
        with anyio.fail_after(deadline):
            result = await session.call_tool(TOOL, {})
        outcome = "error result" if result.is_error else "ok"
    except TimeoutError:
        outcome = "no answer"
    except Exception as exc:
        outcome = type(exc).__name__
    return outcome, time.perf_counter() - started


async def failover_round(urls: dict[str, str], kill: Callable[[], None], restart: Callable[[], None]) -> dict:
    """One SIGKILL of the upstream, seen by one client of each column (sessions opened before):
    how the first call after it ends, and when a call through the same session succeeds again
    (the upstream is started again FAILOVER_RESTART s after the kill)."""
    out: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        sessions = {
            name: await stack.enter_async_context(client(url, "legacy")) for name, url in urls.items()
        }
        for session in sessions.values():
            await timed_calls(session, 3)

        async def follow(name: str, session: Client, t0: float) -> None:
            first, seconds = await call_outcome(session, FAILOVER_WINDOW)
            entry: dict[str, Any] = {"first": first, "first_seconds": seconds, "back": None}
            out[name] = entry
            while time.perf_counter() - t0 < FAILOVER_WINDOW:
                await anyio.sleep(FAILOVER_RETRY)
                if (await call_outcome(session, 2.0))[0] == "ok":
                    entry["back"] = time.perf_counter() - t0
                    return

        async def bring_back(t0: float) -> None:
            await anyio.sleep(FAILOVER_RESTART)
            await anyio.to_thread.run_sync(restart)  # it waits for the port: not on the loop
            out["listening"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        kill()
        async with anyio.create_task_group() as tg:
            for name, session in sessions.items():
                tg.start_soon(follow, name, session, t0)
            tg.start_soon(bring_back, t0)
    return out


def failover_case(tmp: Path, rounds: int) -> list[dict]:
    """One HTTP upstream behind a gateway (`prefix: ''`) and behind fastmcp's proxy, killed `rounds` times."""
    with contextlib.ExitStack() as stack:
        port = free_port()
        box = {"upstream": serve(stack, upstream(tmp, port), port, "the upstream")}
        url = f"http://127.0.0.1:{port}/mcp"
        entry = (
            f"  - {{name: conformance, transport: streamable-http, url: '{url}', gateway: {{prefix: ''}}}}\n"
        )
        urls = {
            "gateway": sidecar(stack, tmp, entry, "the gateway")[1],
            "fastmcp": fastmcp_proxy(stack, tmp, url)[0],
        }
        for target in urls.values():
            anyio.run(wait_listed, target, TOOL)

        def restart() -> None:
            box["upstream"] = serve(stack, upstream(tmp, port), port, "the upstream")

        return [anyio.run(failover_round, urls, box["upstream"].kill, restart) for _ in range(rounds)]


def failover_cells(results: list[dict]) -> dict[str, str]:
    """Column -> what its clients saw: the first call's outcome and time, and when a call worked again."""
    cells = {}
    for name in ("gateway", "fastmcp"):
        seen = [r[name] for r in results if name in r]
        if not seen:
            continue
        firsts = sorted({s["first"] for s in seen})
        first_time = percentile([s["first_seconds"] for s in seen], 50)
        back = [s["back"] for s in seen if s["back"] is not None]
        since = [
            r[name]["back"] - r["listening"]
            for r in results
            if r.get(name, {}).get("back") and "listening" in r
        ]
        cells[name] = (
            f"first call: {'/'.join(firsts)} after median {ms(first_time)}; "
            f"works again in {len(back)}/{len(seen)} rounds"
            + (f", median {percentile(back, 50):.2f} s after the kill" if back else "")
            + (f" ({percentile(since, 50):.2f} s after the upstream listened again)" if since else "")
        )
    return cells


# -- the run ------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else ms(value)


def run(args: argparse.Namespace, tmp: Path) -> list[Row]:
    rows: list[Row] = []
    sections = set(args.sections)
    with contextlib.ExitStack() as stack:
        up_port = free_port()
        up = serve(stack, upstream(tmp, up_port), up_port, "the upstream")
        columns: dict[str, str | None] = {"direct": f"http://127.0.0.1:{up_port}/mcp"}
        # Whose CPU each column's calls cost: this process (the client), the upstream, the middle.
        pids = {name: {"client": os.getpid(), "upstream": up.pid} for name in COLUMNS}
        if args.gateway_url:
            columns["gateway"] = args.gateway_url
        elif gateway_built():
            entry = f"  - {{name: conformance, transport: streamable-http, url: '{columns['direct']}', "
            gateway, columns["gateway"], _ = sidecar(
                stack, tmp, entry + "gateway: {prefix: ''}}\n", "the gateway"
            )
            pids["gateway"]["gateway"] = gateway.pid
        else:
            columns["gateway"] = None
            say("gateway: sidecar.gateway is not in this tree and no --gateway-url: its column stays empty")
        if FASTMCP_PYTHON.exists() and not args.no_fastmcp:
            columns["fastmcp"], pids["fastmcp"]["gateway"] = fastmcp_proxy(stack, tmp, str(columns["direct"]))
        else:
            columns["fastmcp"] = None
            say(f"fastmcp: {FASTMCP_PYTHON.relative_to(REPO)} missing (make bench-fastmcp): column empty")
        live = {name: url for name, url in columns.items() if url is not None and name in args.columns}
        for url in live.values():
            anyio.run(wait_listed, url, TOOL)

        if "latency" in sections:
            p50: dict[tuple[str, str], float] = {}
            for era in ERAS:
                for name, url in live.items():
                    say(f"latency: {name}, {era}, {args.calls} calls")
                    r = anyio.run(latency, url, era, args.calls, args.warmup, pids[name])
                    p50[name, era] = r["p50"]
                    cpu = ", ".join(f"{key[4:]} {r[key] * 1000:.2f}" for key in r if key.startswith("cpu_"))
                    rows.append(row(
                        "gw-latency", f"{TOOL}, one session, sequential: {name} ({era})", "-",
                        f"p50 {ms(r['p50'])}, p99 {ms(r['p99'])}, {r['rate']:.0f} calls/s ({r['n']} calls); "
                        f"CPU ms/call: {cpu}",
                        None, column=name, era=era, **r,
                    ))  # fmt: skip
            for era in ERAS:
                if ("gateway", era) in p50 and ("direct", era) in p50:
                    ratio = p50["gateway", era] / p50["direct", era]
                    rows.append(row("gw-latency", f"gateway p50 / direct p50 ({era})", "<= 1.5",
                                    f"{ratio:.2f}", ratio <= 1.5, era=era, ratio=ratio))  # fmt: skip
                if ("gateway", era) in p50 and ("fastmcp", era) in p50:
                    ratio = p50["gateway", era] / p50["fastmcp", era]
                    rows.append(row("gw-latency", f"gateway p50 / fastmcp p50 ({era})", "<= 0.2",
                                    f"{ratio:.2f}", ratio <= 0.2, era=era, ratio=ratio))  # fmt: skip

        if "load" in sections:
            for name, url in live.items():
                say(f"load: {name}, {args.clients} clients for {args.duration:g} s")
                r = anyio.run(load, url, args.clients, args.duration)
                rows.append(row(
                    "gw-load", f"{args.clients} clients x {args.duration:g} s, {TOOL}: {name}", "-",
                    f"{r['rate']:.0f} calls/s, p50 {ms(r['p50'])}, p99 {ms(r['p99'])}, {r['errors']} errors "
                    f"{r['error_kinds'] or ''} ({r['clients']} sessions)", None, column=name, **r,
                ))  # fmt: skip

        if "conformance" in sections:
            node = shutil.which("node")
            if node is None or not CONFORMANCE_JS.is_file():
                say("conformance: node or the suite is missing (make .cache/npm/.installed): skipped")
            else:
                runs = {}
                for name, url in live.items():
                    say(f"conformance: {name}")
                    runs[name] = run_suite(node, url, tmp / f"conformance-{name}")
                for name, suite in runs.items():
                    missing = lost(runs["direct"].checks, suite.checks) if "direct" in runs else []
                    lost_text = f"; lost: {', '.join(s for s, _ in missing)}" if missing else ""
                    total = suite.count("SUCCESS") + suite.count("FAILURE")
                    rows.append(row(
                        "gw-conformance", f"conformance suite checks passed: {name}", "-",
                        f"{suite.count('SUCCESS')}/{total}{lost_text}",
                        None if name != "gateway" else not missing,
                        column=name, passed=suite.count("SUCCESS"), total=total, lost=missing,
                    ))  # fmt: skip

    if "kill" in sections:
        if not gateway_built():
            say("kill: needs sidecar.gateway in this tree: skipped")
        else:
            for transport in ("stdio", "streamable-http"):
                for era in ERAS:
                    say(f"kill: {transport} upstream, {era}, {args.rounds} rounds")
                    results = kill_case(tmp, transport, era, args.rounds)
                    gone = [r["gone"] for r in results if r["gone"] is not None]
                    told = [r["told"] for r in results if r["told"] is not None]
                    measured = (
                        f"tools gone: median {fmt_ms(percentile(gone, 50) if gone else None)}, "
                        f"max {fmt_ms(max(gone) if gone else None)} ({len(gone)}/{len(results)}); "
                        f"told: median {fmt_ms(percentile(told, 50) if told else None)}, "
                        f"max {fmt_ms(max(told) if told else None)} ({len(told)}/{len(results)})"
                    )
                    ok = len(gone) == len(told) == len(results)
                    rows.append(row("gw-kill", f"upstream SIGKILL: {transport}, {era}", "every round",
                                    measured, ok, transport=transport, era=era, rounds=results))  # fmt: skip

    if "failover" in sections:
        if not gateway_built() or not FASTMCP_PYTHON.exists() or args.no_fastmcp:
            say("failover: needs sidecar.gateway in this tree and fastmcp (make bench-fastmcp): skipped")
        else:
            say(f"failover: HTTP upstream SIGKILLed and restarted 1 s later, {args.rounds} rounds")
            results = failover_case(tmp, args.rounds)
            listening = [r["listening"] for r in results if "listening" in r]
            cells = failover_cells(results)
            rows.append(row(
                "gw-failover",
                "HTTP upstream SIGKILLed, restarted on its port 1 s later (listening again after median "
                f"{percentile(listening, 50):.2f} s): one client session of each, kept",
                "-", "; ".join(f"{k}: {v}" for k, v in cells.items()), None, cells=cells, rounds=results,
            ))  # fmt: skip
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| # | claim | bound | measured | verdict |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        verdict = "-" if r["ok"] is None else "met" if r["ok"] else "NOT MET"
        lines.append(f"| {r['bench']} | {r['claim']} | {r['bound']} | {r['measured']} | {verdict} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", type=lambda s: s.split(","), default=list(SECTIONS), help=",".join(SECTIONS))
    p.add_argument("--columns", type=lambda s: s.split(","), default=list(COLUMNS), help=",".join(COLUMNS))
    p.add_argument("--gateway-url", help="measure the gateway answering here instead of starting one")
    p.add_argument("--no-fastmcp", action="store_true", help="leave the fastmcp column out")
    p.add_argument("--calls", type=int, default=300, help="latency: sequential calls per column and era")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--clients", type=int, default=100, help="load: concurrent clients")
    p.add_argument("--duration", type=float, default=30.0, help="load: seconds of calling per column")
    p.add_argument("--rounds", type=int, default=5, help="kill: SIGKILLs per case")
    args = p.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}")
    info = machine()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    say(
        f"bench_gateway_compare, {info['date']}: {info['nproc']} x {info['cpu']}, Python {info['python']}, "
        f"mcp {info['mcp']}; tree {commit or '?'}; load average before: {load_average()}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        rows = run(args, Path(tmp))
    say(f"\n{table(rows)}\n")
    say(f"total {time.perf_counter() - started:.0f} s; load average after: {load_average()}")
    print(result_line({"rows": rows}), flush=True)
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
