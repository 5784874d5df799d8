"""Side by side (issue #11, item 6): the same servers and faults for every contender, in one run.

    make bench-baseline bench-fastmcp .cache/npm/.installed
    .venv/bin/python benchmarks/bench_side_by_side.py                  # about 8 minutes on 2 cores
    .venv/bin/python benchmarks/bench_side_by_side.py --contenders sidecar,sdk --no-gateway

Contenders, each run by this script in a fresh interpreter (`--contender NAME`), one after the other:
- `sidecar`: mcp-sidecar's library `MCPServerManager`, config defaults;
- `agents-parallel` / `agents-sequential`: the OpenAI Agents SDK's `MCPServerManager`
  (`connect_in_parallel=True` / `False`) over `MCPServerStdio` / `MCPServerStreamableHttp`, its
  defaults, run by `.cache/bench-baseline` (`make bench-baseline`; its own venv);
- `sdk`: a plain `mcp.Client` per server, SDK defaults, entered one after the other, each in its
  own task (so a transport failure ends that session, not the benchmark), no supervision.

Scenarios, the same servers for each contender:
- `startup`: 8 stdio servers (7 healthy `default_healthy_kind()`, 1 `behaving.py
  --hang-at-initialize` in 4th place); both managers with a connect timeout of 5 s (the SDK has
  none); the time until the contender hands back control, and how many servers it offers then.
  Cut off at 15 s. Then `close`: its time and the servers still running after it.
- `faults`: 3 servers, `local` and `stuck` (stdio `behaving.py`) and `remote` (`behaving.py` over
  streamable HTTP, started by this script), contender defaults, one call each first. At t0:
  SIGKILL `local`, SIGKILL `remote`, SIGSTOP `stuck`; `remote` is started again on its port 1 s
  later. For 20 s: when the contender stops offering each server (its `active_servers`; the plain
  client: its `async with` ended), how the first call (started at t0) ends and when, and when a
  call succeeds again with no action from us (retried every 0.25 s, 2 s each). Then `stuck` (the
  process the contender runs now) is SIGSTOPped and the contender closed: time, servers left.

Everything runs on 127.0.0.1; the only processes signalled are the ones this script (or a
contender it runs) started, by pid, with their command lines checked first. After each
contender's process exits, its servers still alive are counted ("left after exit") and killed.
Then `bench_gateway_compare.py` runs (latency, conformance, kill, failover) for the gateway beside
fastmcp's proxy. Prints the tables and one `RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # nothing may leave this machine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BASELINE_PYTHON,
    BEHAVING,
    LOCALHOST,
    REPO,
    SERVER_MARKERS,
    Row,
    children,
    cmdline,
    default_healthy_kind,
    free_port,
    healthy_server,
    hung_server,
    is_dead,
    kill_ours,
    port_open,
    read_pidfile,
    result_line,
    row,
    say,
)

BENCH = Path(__file__).resolve()
GATEWAY_COMPARE = BENCH.parent / "bench_gateway_compare.py"
SETPRIV = shutil.which("setpriv")

CONTENDERS = {
    "sidecar": "mcp-sidecar MCPServerManager",
    "agents-parallel": "openai-agents MCPServerManager, parallel",
    "agents-sequential": "openai-agents MCPServerManager, sequential",
    "sdk": "plain mcp SDK Client",
}
STARTUP_SERVERS, STARTUP_HUNG, CONNECT_TIMEOUT, STARTUP_DEADLINE = 8, 3, 5.0, 15.0
FAULT_WINDOW, RESTART_AFTER, RETRY_EVERY, RETRY_DEADLINE = 20.0, 1.0, 0.25, 2.0
CLOSE_DEADLINE, LEFT_GRACE = 25.0, 0.5
VICTIMS = ("local", "remote", "stuck")  # SIGKILL stdio, SIGKILL HTTP (restarted), SIGSTOP stdio


@dataclass(frozen=True)
class Spec:
    """One server as every contender is told about it: a stdio command, or a streamable-HTTP URL."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    url: str | None = None


# -- contenders: one interface over four ways of holding MCP servers ------------------------------


class Sidecar:
    """mcp-sidecar's library manager."""

    notices = True

    def __init__(self) -> None:
        # Imported before the clock starts, as for every contender (`import sidecar` alone is lazy:
        # the manager's module brings the mcp SDK, ~2.6 s of CPU here, which would run in the loop).
        from sidecar import MCPServerManager, ServerConfig

        self.api = MCPServerManager, ServerConfig

    async def start(self, specs: Sequence[Spec], connect_timeout: float | None) -> None:
        MCPServerManager, ServerConfig = self.api
        extra = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
        configs = [
            ServerConfig(name=s.name, transport="streamable-http", url=s.url, **extra)
            if s.url
            else ServerConfig(name=s.name, transport="stdio", command=s.command, args=s.args, **extra)
            for s in specs
        ]
        self.manager = MCPServerManager(configs)
        await self.manager.__aenter__()

    def offered(self) -> set[str]:
        return {s.name for s in self.manager.active_servers}

    async def call(self, name: str) -> Any:
        return await self.manager.call_tool(name, "echo", {"text": "hi"})

    async def close(self) -> None:
        await self.manager.__aexit__(None, None, None)


class Agents:
    """The OpenAI Agents SDK's manager: it connects once (or on `reconnect()`); `active_servers`
    changes only then, so it never stops offering a server that died after connecting."""

    notices = False

    def __init__(self, parallel: bool) -> None:
        import agents.mcp  # noqa: F401 - imported before the clock starts
        from agents import set_tracing_disabled

        self.parallel = parallel
        set_tracing_disabled(True)

    async def start(self, specs: Sequence[Spec], connect_timeout: float | None) -> None:
        from agents.mcp import MCPServerManager, MCPServerStdio, MCPServerStreamableHttp

        logging.getLogger("openai.agents").setLevel(logging.CRITICAL)
        self.servers = {
            s.name: MCPServerStreamableHttp(params={"url": s.url}, name=s.name)
            if s.url
            else MCPServerStdio(params={"command": s.command, "args": list(s.args)}, name=s.name)
            for s in specs
        }
        extra = {} if connect_timeout is None else {"connect_timeout_seconds": connect_timeout}
        self.manager = MCPServerManager(
            list(self.servers.values()), connect_in_parallel=self.parallel, **extra
        )
        await self.manager.__aenter__()

    def offered(self) -> set[str]:
        return {s.name for s in self.manager.active_servers}

    async def call(self, name: str) -> Any:
        return await self.servers[name].call_tool("echo", {"text": "hi"})

    async def close(self) -> None:
        await self.manager.__aexit__(None, None, None)


class PlainSdk:
    """`async with mcp.Client(...)` per server, one after the other, SDK defaults (no timeouts).

    Each client is entered in a task of its own that holds it until `close`: the only sign the
    SDK gives of a dead server is that `async with` ending with an error, which is what
    `offered` reflects."""

    notices = True  # only as far as the SDK's `async with` ends by itself

    def __init__(self) -> None:
        import mcp.client.client  # noqa: F401 - imported before the clock starts

    async def start(self, specs: Sequence[Spec], connect_timeout: float | None) -> None:
        self.clients: dict[str, Any] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.closing = asyncio.Event()
        for spec in specs:  # as a loop of `await stack.enter_async_context(Client(...))` would
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.tasks[spec.name] = asyncio.create_task(self._hold(spec, ready))
            with contextlib.suppress(Exception):
                await asyncio.shield(ready)

    async def _hold(self, spec: Spec, ready: asyncio.Future[None]) -> None:
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        target = spec.url or StdioServerParameters(command=spec.command, args=list(spec.args))
        try:
            async with Client(target) as client:
                self.clients[spec.name] = client
                if not ready.done():
                    ready.set_result(None)
                await self.closing.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
        finally:
            self.clients.pop(spec.name, None)

    def offered(self) -> set[str]:
        return set(self.clients)

    async def call(self, name: str) -> Any:
        client = self.clients.get(name)
        if client is None:
            raise ConnectionError(f"no session to {name}: its `async with` has ended")
        return await client.call_tool("echo", {"text": "hi"})

    async def close(self) -> None:
        self.closing.set()
        for name, task in self.tasks.items():  # one still in its handshake is cancelled, as Ctrl-C would
            if name not in self.clients:
                task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


def contender(name: str) -> Any:
    if name == "sidecar":
        return Sidecar()
    if name.startswith("agents-"):
        return Agents(parallel=name == "agents-parallel")
    if name == "sdk":
        return PlainSdk()
    raise ValueError(f"unknown contender {name!r}")


# -- measuring one contender ---------------------------------------------------------------------


def now() -> float:
    return time.perf_counter()


async def timed_call(c: Any, name: str, deadline: float) -> dict[str, Any]:
    """One echo call bounded by `deadline`: how it ended (`ok`, `hung`, or the error's type) and when."""
    started = now()
    outcome, error = "ok", ""
    try:
        async with asyncio.timeout(deadline) as scope:
            result = await c.call(name)
        if getattr(result, "is_error", False):
            outcome = "error result"
    except TimeoutError as exc:
        outcome, error = ("hung", "") if scope.expired() else (type(exc).__name__, str(exc))
    except BaseException as exc:  # how a contender fails is what is measured
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise
        outcome, error = type(exc).__name__, str(exc)
    return {"outcome": outcome, "seconds": now() - started, "error": error[:120]}


def server_pids() -> dict[int, str]:
    """Our live children (zombies excluded) that are MCP servers, with their command lines."""
    found = {}
    for pid, state in children():
        line = cmdline(pid)
        if state != "Z" and any(marker in line for marker in SERVER_MARKERS):
            found[pid] = line
    return found


async def close_and_count(c: Any, exclude: set[int]) -> dict[str, Any]:
    """Close the contender: seconds, and which of its servers are still running LEFT_GRACE s later."""
    before = {pid: line for pid, line in server_pids().items() if pid not in exclude}
    started = now()
    error = None
    try:
        async with asyncio.timeout(CLOSE_DEADLINE):
            await c.close()
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    seconds = now() - started
    deadline = now() + LEFT_GRACE
    while any(not is_dead(pid) for pid in before) and now() < deadline:
        await asyncio.sleep(0.01)
    left = [pid for pid in before if not is_dead(pid)]
    return {"seconds": seconds, "error": error, "servers": len(before), "left": left}


async def startup(name: str, kind: str, server_python: str, workdir: Path) -> dict[str, Any]:
    specs = []
    for i in range(STARTUP_SERVERS):
        server = f"s{i}"
        if i == STARTUP_HUNG:
            command, args = hung_server(workdir / "hung.pid", server_python)
        else:
            command, args = healthy_server(kind, server, server_python)
        specs.append(Spec(server, command, tuple(args)))
    c = contender(name)
    started = now()
    finished = True
    try:
        async with asyncio.timeout(STARTUP_DEADLINE):
            await c.start(specs, CONNECT_TIMEOUT)
    except TimeoutError:
        finished = False
    ready = now() - started
    offered = sorted(c.offered())
    closed = await close_and_count(c, set())
    return {"finished": finished, "ready": ready, "offered": offered, "close": closed, "kind": kind}


class HttpServer:
    """behaving.py over streamable HTTP on a fixed port, ours to kill and start again."""

    def __init__(self, server_python: str, port: int, log: Path) -> None:
        self.argv = [
            *([SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []),  # dies with this process
            server_python,
            str(BEHAVING),
            "--transport",
            "streamable-http",
            "--host",
            LOCALHOST,
            "--port",
            str(port),
            "--name",
            "remote",
        ]
        self.port, self.log = port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def reap(self) -> None:
        self.kill()
        if self.process is not None:
            self.process.wait(10)

    async def listening(self, timeout: float = 30.0) -> float | None:
        """perf_counter time at which the port accepts connections, or None."""
        deadline = now() + timeout
        while now() < deadline:
            if port_open(self.port):
                return now()
            await asyncio.sleep(0.01)
        return None


async def watch(
    c: Any, victim: str, t0: float, listening: Callable[[], float | None] | None = None
) -> dict[str, Any]:
    """After a fault at t0: when `victim` stops being offered, how the first call ends, and the
    first call that succeeds again (seconds from t0), within FAULT_WINDOW."""
    end = t0 + FAULT_WINDOW
    result: dict[str, Any] = {"unoffered": None, "offered_again": None, "recovered": None, "retries": 0}

    async def offering() -> None:
        while now() < end:
            shown = victim in c.offered()
            if result["unoffered"] is None and not shown:
                result["unoffered"] = now() - t0
            elif result["unoffered"] is not None and shown and result["offered_again"] is None:
                result["offered_again"] = now() - t0
                return
            await asyncio.sleep(0.005)

    async def calling() -> None:
        first = await timed_call(c, victim, end - now())
        result["first_call"] = first
        while now() < end - 0.05:
            await asyncio.sleep(RETRY_EVERY)
            attempt = await timed_call(c, victim, min(RETRY_DEADLINE, end - now()))
            result["retries"] += 1
            if attempt["outcome"] == "ok":
                result["recovered"] = now() - t0
                return

    await asyncio.gather(offering(), calling())
    if listening is not None:  # when the restarted server accepted connections again
        heard = listening()
        result["listening"] = None if heard is None else heard - t0
    return result


async def faults(name: str, server_python: str, workdir: Path) -> dict[str, Any]:
    pidfile = {v: workdir / f"{v}.pid" for v in ("local", "stuck")}
    stdio = {
        v: Spec(v, server_python, (str(BEHAVING), "--name", v, "--pidfile", str(pidfile[v]))) for v in pidfile
    }
    http = HttpServer(server_python, free_port(), workdir / "remote.log")
    http.start()
    try:
        if await http.listening() is None:
            raise RuntimeError(f"the HTTP server did not listen:\n{http.log.read_text()[-2000:]}")
        specs = [stdio["local"], Spec("remote", url=f"http://{LOCALHOST}:{http.port}/mcp"), stdio["stuck"]]
        c = contender(name)
        started = now()
        await c.start(specs, None)
        out: dict[str, Any] = {"ready": now() - started, "offered": sorted(c.offered())}
        warm = {v: await timed_call(c, v, 10.0) for v in VICTIMS}
        out["warm"] = warm
        if any(w["outcome"] != "ok" for w in warm.values()):
            out["close"] = await close_and_count(c, {http.process.pid} if http.process else set())
            return out
        pids = {v: read_pidfile(pidfile[v]) for v in pidfile}
        heard: dict[str, float] = {}

        async def restart() -> None:
            await asyncio.sleep(RESTART_AFTER)
            http.reap()
            http.start()
            at = await http.listening()
            if at is not None:
                heard["listening"] = at

        t0 = now()
        kill_ours([pids["local"]], "behaving.py")
        http.kill()
        if "behaving.py" in cmdline(pids["stuck"]):
            os.kill(pids["stuck"], signal.SIGSTOP)
        watched = await asyncio.gather(
            watch(c, "local", t0),
            watch(c, "remote", t0, lambda: heard.get("listening")),
            watch(c, "stuck", t0),
            restart(),
        )
        out.update(dict(zip(VICTIMS, watched[:3], strict=True)))
        # Close with a stopped server: the process the contender runs now as `stuck` (the same one
        # for a contender that never restarts it, a fresh one for one that did).
        current = read_pidfile(pidfile["stuck"])
        if not is_dead(current) and "behaving.py" in cmdline(current):
            os.kill(current, signal.SIGSTOP)
        out["stuck_restarted"] = current != pids["stuck"]
        out["close"] = await close_and_count(c, {http.process.pid} if http.process else set())
        return out
    finally:
        http.reap()


async def run_contender(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    result: dict[str, Any] = {"contender": args.contender, "python": sys.executable}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        result["versions"] = {
            p: version(p) for p in ("mcp",) + (("openai-agents",) if "agents" in args.contender else ())
        }
    say(f"  {args.contender}: startup")
    result["startup"] = await startup(args.contender, args.healthy, args.server_python, workdir / "startup")
    say(f"  {args.contender}: faults")
    result["faults"] = await faults(args.contender, args.server_python, workdir / "faults")
    return result


def contender_main(args: argparse.Namespace) -> int:
    for sub in ("startup", "faults"):
        (Path(args.workdir) / sub).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.CRITICAL)  # the contenders' own error logs would drown the output
    result = asyncio.run(run_contender(args))
    print(
        result_line(
            {"rows": [row(f"sbs-{args.contender}", CONTENDERS[args.contender], "-", "raw", None, **result)]}
        )
    )
    return 0


# -- the table (pure: raw results in, markdown out) ------------------------------------------------


def after(seconds: float | None, window: float) -> str:
    """A time from the fault, or that it did not happen within the window."""
    if seconds is None:
        return f"not within {window:g} s"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def call_cell(call: dict[str, Any] | None, window: float) -> str:
    if not call:
        return "-"
    if call["outcome"] == "hung":
        return f"no answer within {window:g} s"
    verb = "succeeds" if call["outcome"] == "ok" else f"fails ({call['outcome']})"
    return f"{verb} after {after(call['seconds'], window)}"


def close_cell(close: dict[str, Any] | None, after_exit: int | None) -> str:
    if not close:
        return "-"
    text = f"{close['seconds']:.2f} s; {len(close['left'])} of {close['servers']} servers left"
    if after_exit is not None:
        text += f", {after_exit} after exit"
    return text + (f" ({close['error']})" if close.get("error") else "")


def startup_cell(start: dict[str, Any] | None) -> str:
    if not start:
        return "-"
    offered = f"{len(start['offered'])}/{STARTUP_SERVERS} offered"
    if not start["finished"]:
        return f"not back within {STARTUP_DEADLINE:g} s; {offered}"
    return f"back after {start['ready']:.2f} s; {offered}"


def fault_cells(victim: dict[str, Any] | None, notices: bool) -> tuple[str, str, str]:
    """(stops offering it, the first call, a call succeeds again) for one victim."""
    if not victim:
        return "-", "-", "-"
    unoffered = after(victim["unoffered"], FAULT_WINDOW)
    if victim["unoffered"] is None and not notices:
        unoffered = f"never (no health notion; still offered at {FAULT_WINDOW:g} s)"
    if victim["recovered"] is None:
        recovered = f"no (not within {FAULT_WINDOW:g} s)"
    else:
        recovered = f"yes, after {after(victim['recovered'], FAULT_WINDOW)}"
    if victim.get("listening") is not None:
        recovered += f" (server listening again at {victim['listening']:.2f} s)"
    return unoffered, call_cell(victim.get("first_call"), FAULT_WINDOW), recovered


SCENARIOS = (
    ("startup", "startup: 8 stdio servers, 1 hung at initialize (connect timeout 5 s; the SDK has none)"),
    ("startup_close", "close after that startup (the hung server alive): time, servers left"),
    ("local_noticed", "crash, stdio (SIGKILL): stops offering it after"),
    ("local_call", "crash, stdio: the first call (started at the kill)"),
    ("local_recovered", "crash, stdio: a call succeeds again, with no action"),
    (
        "remote_noticed",
        "crash, streamable HTTP (SIGKILL; restarted on its port 1 s later): stops offering it after",
    ),
    ("remote_call", "crash, HTTP: the first call"),
    ("remote_recovered", "crash, HTTP: a call succeeds again, with no action"),
    ("stuck_noticed", "hang, stdio (SIGSTOP): stops offering it after"),
    ("stuck_call", "hang: the first call"),
    ("stuck_recovered", "hang: a call succeeds again (the stopped process replaced), with no action"),
    ("faults_close", "close with a SIGSTOPped server (and the others): time, servers left"),
)


def cells(result: dict[str, Any]) -> dict[str, str]:
    """Scenario key -> cell text for one contender's raw result."""
    if "error" in result and "startup" not in result:
        return {key: f"({result['error']})" for key, _ in SCENARIOS}
    notices = result.get("contender") != "agents-parallel" and result.get("contender") != "agents-sequential"
    start = result.get("startup") or {}
    fault = result.get("faults") or {}
    left_exit = result.get("left_after_exit") or {}
    out = {
        "startup": startup_cell(start),
        "startup_close": close_cell(start.get("close"), left_exit.get("startup")),
        "faults_close": close_cell(fault.get("close"), left_exit.get("faults")),
    }
    for victim in VICTIMS:
        noticed, call, recovered = fault_cells(fault.get(victim), notices)
        out |= {f"{victim}_noticed": noticed, f"{victim}_call": call, f"{victim}_recovered": recovered}
    return out


def markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows)


def side_by_side_table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    per = {name: cells(results[name]) for name in names}
    return markdown(
        ["scenario", *(CONTENDERS.get(n, n) for n in names)],
        [[title, *(per[n][key] for n in names)] for key, title in SCENARIOS],
    )


def gateway_table(rows: list[Row]) -> str:
    """bench_gateway_compare's rows as one table: what x (direct, gateway, fastmcp)."""
    columns = ("direct", "gateway", "fastmcp")
    lines: list[list[str]] = []
    for era in ("legacy", "2026-07-28"):
        found = {r["data"].get("column"): r["data"] for r in rows if r["bench"] == "gw-latency"
                 and r["data"].get("era") == era and "column" in r["data"]}  # fmt: skip
        if found:
            lines.append([f"echo latency, {era} client: p50 / p99, calls/s"] + [
                f"{found[c]['p50'] * 1000:.1f} / {found[c]['p99'] * 1000:.1f} ms, {found[c]['rate']:.0f}"
                if c in found else "-" for c in columns])  # fmt: skip
    conformance = {r["data"].get("column"): r["measured"] for r in rows if r["bench"] == "gw-conformance"}
    if conformance:
        lines.append(
            ["conformance suite, active server checks passed"] + [conformance.get(c, "-") for c in columns]
        )
    for r in rows:
        if r["bench"] == "gw-failover":
            lines.append([r["claim"]] + [r["data"].get("cells", {}).get(c, "-") for c in columns])
    for r in rows:
        if r["bench"] == "gw-kill":
            lines.append([f"{r['claim']} (gateway only)", "-", r["measured"], "-"])
    return markdown(["what", *columns], lines)


# -- the whole run -----------------------------------------------------------------------------------


def contender_python(name: str) -> str | None:
    """The interpreter that runs a contender: the baseline venv for openai-agents (its own mcp)."""
    if not name.startswith("agents-"):
        return sys.executable
    return str(BASELINE_PYTHON) if BASELINE_PYTHON.exists() else None


def left_after_exit(result: dict[str, Any], workdir: Path) -> dict[str, int]:
    """Servers still alive once the contender's process has exited (orphans), per phase; then
    SIGKILLed, by pid, if they are servers we started. Pidfiles catch a process killed mid-run."""
    left: dict[str, int] = {}
    grace = time.perf_counter() + LEFT_GRACE  # a server that saw its stdin close may still be exiting
    for phase in ("startup", "faults"):
        pids = set((result.get(phase) or {}).get("close", {}).get("left", []))
        pids |= {int(p.read_text() or 0) for p in (workdir / phase).glob("*.pid") if p.read_text().strip()}
        while any(not is_dead(pid) for pid in pids) and time.perf_counter() < grace:
            time.sleep(0.01)
        alive = [pid for pid in pids if not is_dead(pid) and any(m in cmdline(pid) for m in SERVER_MARKERS)]
        left[phase] = len(alive)
        kill_ours(alive, *SERVER_MARKERS)
    return left


def run_contenders(names: Sequence[str], kind: str) -> dict[str, dict[str, Any]]:
    from run_all import run_one

    results: dict[str, dict[str, Any]] = {}
    for name in names:
        python = contender_python(name)
        if python is None:
            results[name] = {
                "error": f"skipped: {BASELINE_PYTHON.relative_to(REPO)} missing (make bench-baseline)"
            }
            continue
        say(f"\n== {name} ({python})")
        with tempfile.TemporaryDirectory(prefix=f"bench-sbs-{name}-") as tmp:
            argv = [python, "-u", str(BENCH), "--contender", name, "--workdir", tmp,
                    "--server-python", sys.executable, "--healthy", kind]  # fmt: skip
            rows, seconds, error = run_one(name, BENCH, 240, argv=argv)
            result = dict(rows[0]["data"]) if rows else {"error": error or "no result"}
            result["seconds"] = seconds
            result["left_after_exit"] = left_after_exit(result, Path(tmp))
        results[name] = result
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from _common import HEALTHY_KINDS
    from run_all import load, machine, run_one

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", choices=["side_by_side"], help="as run_all.py runs it: no gateway part")
    p.add_argument("--contenders", type=lambda s: s.split(","), default=list(CONTENDERS))
    p.add_argument("--healthy", choices=HEALTHY_KINDS, default=default_healthy_kind())
    p.add_argument("--no-gateway", action="store_true", help="leave bench_gateway_compare.py out")
    p.add_argument(
        "--gateway-args",
        default="--sections latency,conformance,kill,failover --calls 100 --rounds 3",
        help="arguments for bench_gateway_compare.py",
    )
    p.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)  # one contender, here
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--server-python", default=sys.executable, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.contender:
        return contender_main(args)
    if args.name == "side_by_side":  # from run_all.py: the contenders; the gateway has its own entries
        args.no_gateway = True
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        p.error(f"unknown contenders {sorted(unknown)}")

    info = machine()
    before = load()
    say(f"bench_side_by_side, {info['date']}: {info['nproc']} x {info['cpu']}, Python {info['python']}, "
        f"mcp {info['mcp']}, kernel {info['kernel']}; load average before: {before}")  # fmt: skip
    started = time.perf_counter()
    results = run_contenders(args.contenders, args.healthy)
    gateway_rows: list[Row] = []
    if not args.no_gateway:
        say("\n== gateway vs fastmcp (bench_gateway_compare.py)")
        command = [sys.executable, "-u", str(GATEWAY_COMPARE), *args.gateway_args.split()]
        gateway_rows, _, error = run_one("gateway", GATEWAY_COMPARE, 420, argv=command)
        if error:
            say(f"   bench_gateway_compare: {error}")
    after_load = load()
    say(f"\n{side_by_side_table(results)}\n")
    if gateway_rows:
        say(f"{gateway_table(gateway_rows)}\n")
    say(f"total {time.perf_counter() - started:.0f} s; load average before {before}, after {after_load}")
    rows = [row(f"sbs-{key}", title, "-", "; ".join(f"{CONTENDERS.get(n, n)}: {cells(r)[key]}"
                for n, r in results.items()), None) for key, title in SCENARIOS]  # fmt: skip
    rows[0]["data"] = {"results": results, "machine": info, "load": [before, after_load]}
    print(result_line({"rows": rows + gateway_rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
