"""The chaos scenario: faulty MCP servers beside healthy ones under one real `mcp-sidecar run`.

Shared by `tests/e2e/test_chaos.py` (which asserts) and `benchmarks/bench_chaos.py` (which
prints the numbers). Each faulty server shows one fault, over stdio, streamable HTTP or
SSE. A poller reads `/livez` and `/metrics` every 100 ms (and `/health/mcp` every 250 ms)
for the whole run, times every answer and checks the invariants of `chaos_checks` on every
sample; admin tool calls (`POST /servers/{name}/tools/{tool}`) drive the faults that happen
during a call. Everything runs on 127.0.0.1, and the run signals only processes it started:
pids come from the servers' own pidfiles and are checked against /proc first.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import BEHAVING, LOCALHOST, direct_children, free_port, proc_stat

from .chaos_checks import (
    Expect,
    Scrape,
    counter_regressions,
    health_violations,
    healthy_violations,
    metrics_violations,
    unmet,
)
from .chaos_gateway import GatewayCall, GatewayCallers, list_gateway_tools

__all__ = ["FORBIDDEN_LOG_TEXT", "Call", "Chaos", "GatewayCall", "Report"]

TOKEN_ENV = "CHAOS_ADMIN_TOKEN"
# In the sidecar's stderr, these say that an exception escaped somewhere, or that a supervisor
# caught a bug of ours (logged with its traceback).
FORBIDDEN_LOG_TEXT = (
    "exception was never retrieved",
    "Task was destroyed but it is pending",
    "Traceback",
    '"event":"internal_error"',
)
POLL_PERIOD = {"/livez": 0.1, "/metrics": 0.1, "/health/mcp": 0.25}
_REQUEST_TIMEOUT = 5.0
# The slow calls' tools sleep this long against a call_timeout of 1 s: far apart, so that a call
# cut at its timeout is told from one that waited for the tool even on a crowded host.
SLOW_CALL = 10
_MB = 10  # the size of the big answers, in millions of characters

Spawn = Callable[[list[str], int], None]  # (argv, port): start an HTTP server that the caller kills


@dataclass(frozen=True)
class Service:
    """An HTTP server process of the run (tests/servers/behaving.py), started by `Spawn`."""

    key: str
    transport: str
    flags: tuple[str, ...]
    port: int
    pidfile: Path

    def argv(self) -> list[str]:
        return [
            sys.executable,
            str(BEHAVING),
            "--transport",
            self.transport,
            "--port",
            str(self.port),
            "--pidfile",
            str(self.pidfile),
            "--name",
            self.key,
            *self.flags,
        ]


@dataclass(frozen=True)
class Entry:
    """One configured server, the one fault it shows, and what that fault must do."""

    name: str
    fault: str
    expect: Expect
    config: Mapping[str, Any]
    pidfile: Path | None = None  # where its server process writes its pid (every one, stdio)


@dataclass
class Call:
    """One admin tool call: HTTP status, body and duration."""

    server: str
    tool: str
    status: int = 0
    body: str = ""
    seconds: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str | None:
        """The first text content of a 200 answer."""
        return self.json()["content"][0]["text"] if self.status == 200 else None


@dataclass
class Report:
    """Everything a run saw: the test asserts on it, the benchmark prints it."""

    entries: dict[str, Entry]
    latencies: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # path: [(t, seconds)]
    failures: dict[str, list[str]] = field(default_factory=dict)  # path: answers other than 200
    samples: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    ever: dict[str, set[str]] = field(default_factory=dict)  # server: states seen on /metrics
    calls: dict[str, Call] = field(default_factory=dict)
    steps: list[tuple[float, str]] = field(default_factory=list)
    up_at: float = 0.0  # run time when every server that can connect was active
    faults: tuple[float, float] = (0.0, 0.0)  # run times: faults began, every fault had its effect
    unmet: dict[str, str] = field(default_factory=dict)  # server: what it did instead
    pids: dict[str, list[int]] = field(default_factory=dict)  # server: pids seen in its pidfile
    before: Scrape | None = None  # when the faults began
    last: Scrape | None = None
    # The sidecar's main thread during the faults: seconds on a CPU, and seconds it was ready to
    # run but waited for one (from /proc/PID/schedstat): what its answer times owe to the host.
    sidecar_ran: float = 0.0
    sidecar_waited: float = 0.0
    exit_code: int | None = None
    exit_seconds: float = 0.0
    children_seen: int = 0
    leftovers: list[str] = field(default_factory=list)
    # Through the gateway, during the faults: every call of the concurrent callers, the callers
    # whose session failed, and the tools the gateway offered once the faults had settled.
    gateway_calls: list[GatewayCall] = field(default_factory=list)
    gateway_sessions_failed: list[str] = field(default_factory=list)
    gateway_tools: list[str] = field(default_factory=list)
    log: str = ""
    seconds: float = 0.0

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    @property
    def healthy(self) -> list[str]:
        return [name for name, entry in self.entries.items() if entry.fault == "none"]

    def latencies_between(self, path: str, start: float, end: float) -> list[float]:
        return [seconds for t, seconds in self.latencies.get(path, []) if start <= t <= end]

    def forbidden_log_lines(self) -> list[str]:
        return [line for line in self.log.splitlines() if any(text in line for text in FORBIDDEN_LOG_TEXT)]


class Chaos:
    """One run of the scenario. `spawn(argv, port)` starts an HTTP server the caller kills at the
    end; `start_sidecar(config, env=...)` starts `mcp-sidecar run` (a `harness.SidecarProcess`)."""

    def __init__(
        self,
        workdir: Path,
        spawn: Spawn,
        start_sidecar: Callable[..., Any],
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.workdir = workdir
        self.spawn = spawn
        self.start_sidecar = start_sidecar
        self.say = say
        self.port = free_port()
        self.gateway = f"http://{LOCALHOST}:{free_port()}/mcp"
        self.token = "chaos-" + os.urandom(8).hex()
        self.services: dict[str, Service] = {}
        self.entries: dict[str, Entry] = {}
        self._define()
        self.report = Report(self.entries)
        self.sidecar: Any = None
        self.started = time.monotonic()

    # The servers -------------------------------------------------------------------------------

    def _service(self, key: str, transport: str, *flags: str) -> Service:
        self.services[key] = Service(key, transport, flags, free_port(), self.workdir / f"{key}.pid")
        return self.services[key]

    def _stdio(self, name: str, fault: str, expect: Expect, *flags: str, **fields: Any) -> None:
        pidfile = self.workdir / f"{name}.pid"
        args = [str(BEHAVING), "--pidfile", str(pidfile), "--name", name, *flags]
        config = {"name": name, "transport": "stdio", "command": sys.executable, "args": args, **fields}
        self.entries[name] = Entry(name, fault, expect, config, pidfile)

    def _http(
        self, name: str, fault: str, expect: Expect, target: Service | str, transport: str = "", **fields: Any
    ) -> None:
        """A server reached over HTTP: a service of the run, or a bare URL nothing listens on."""
        if isinstance(target, Service):
            transport = transport or target.transport
            path = "/sse" if transport == "sse" else "/mcp"
            url, pidfile = f"http://{LOCALHOST}:{target.port}{path}", target.pidfile
        else:
            url, pidfile = target, None
        config = {"name": name, "transport": transport or "streamable-http", "url": url, **fields}
        self.entries[name] = Entry(name, fault, expect, config, pidfile)

    def _define(self) -> None:
        steady = {"health": {"timeout": "3s"}}  # the healthy ones: a busy host is no reason to fail
        quick = {"connect_timeout": "1s", "connect_grace": 0}  # for handshakes that never end
        # A 10 MB answer holds up the probes behind it (stdio: on the same pipe; HTTP: the server
        # process is busy writing it), the more so on a busy host, where one took 15 s: these
        # probes wait for it.
        tolerant = {"health": {"timeout": "10s"}}
        # Sessions (the legacy era) where a restart must lose one: a stateless server restarted
        # behind its port is the same server to its clients.
        legacy = {"protocol": "legacy"}
        # Each Python SDK server takes ~1.3 s of CPU to start: HTTP servers whose faults do not
        # get in each other's way share a process that serves both HTTP transports.
        http, sse, both = "streamable-http", "sse", "--also-sse"
        up = Expect("up")
        never = Expect("never", times=2)

        ok = self._service("ok", http, both)
        self._stdio("ok-stdio", "none", up, **steady)
        self._http("ok-http", "none", up, ok, **steady)
        self._http("ok-sse", "none", up, ok, sse, **steady)

        self._stdio("kill-stdio", "SIGKILL", Expect("recovers", "exited"))
        self._stdio("stop-stdio", "SIGSTOP, then SIGCONT", Expect("recovers", "probe_timeout"))
        self._stdio(
            "crashloop-stdio",
            "exits 200 ms after each connect",
            Expect("loops", "exited", 2),
            "--crash-after",
            "0.2",
            reconnect={"initial_backoff": "2s", "max_backoff": "2s"},
        )
        self._stdio("crash-handshake-stdio", "exits on the handshake", never, "--crash-at-initialize")
        self._stdio(
            "hang-handshake-stdio", "never answers the handshake", never, "--hang-at-initialize", **quick
        )
        self._stdio(
            "garbage-stdio", "lines that are not JSON-RPC on stdout", up, "--garbage-stdout", "--fault-tools"
        )
        self._stdio("big-stdio", f"a {_MB} MB answer", up, "--fault-tools", **tolerant)
        self._stdio("slow-stdio", "a call slower than call_timeout", up, call_timeout="1s")
        self._stdio(
            "hangup-stdio", "stdout closed during a call", Expect("recovers", "closed"), "--fault-tools"
        )

        killed = self._service("kill", http, both)
        self._http("kill-http", "SIGKILL, then connection refused", Expect("down", "transport_error"), killed)
        self._http("kill-sse", "SIGKILL, then connection refused", Expect("down", "closed"), killed, sse)
        stopped = self._service("stop-http", http)
        self._http(
            "stop-http",
            "SIGSTOP, then SIGCONT",
            Expect("recovers", "probe_timeout"),
            stopped,
            connect_timeout="1s",
        )
        crashloop = self._service("crashloop-http", http, "--respawn", "--crash-after", "0.2")
        self._http(
            "crashloop-http",
            "exits 200 ms after each connect, restarted at once",
            Expect("loops", times=3),
            crashloop,
            **legacy,
        )
        crashing = self._service("crash-handshake", http, "--crash-at-initialize")
        self._http("crash-handshake-http", "resets every connection at the handshake", never, crashing)
        self._http("crash-handshake-sse", "resets every connection at the handshake", never, crashing, sse)
        hanging = self._service("hang-handshake", http, "--hang-at-initialize")
        self._http("hang-handshake-http", "never accepts a connection", never, hanging, **quick)
        self._http("hang-handshake-sse", "never accepts a connection", never, hanging, sse, **quick)
        self._http("refused-http", "connection refused", never, f"http://{LOCALHOST}:{free_port()}/mcp")
        e500 = self._service("e500-http", http, "--http-500-after-calls", "1")
        self._http("e500-http", "HTTP 500 to every POST after one call", Expect("down", "probe_error"), e500)
        # The killed child's GET stream ends: the sidecar probes at once and meets the 404 of the
        # child that replaced it (reason closed), or a request in flight meets the reset (reason
        # transport_error); either way it starts a new session.
        gone = self._service("gone-http", http, "--respawn")
        self._http(
            "gone-http",
            "restarted behind its port: the session is gone (404)",
            Expect("recovers"),
            gone,
            **legacy,
        )
        # The same without a GET stream (refused, as many servers do): only the probes meet the 404.
        quiet = self._service("gone-http-nostream", http, "--respawn", "--refuse-get-stream")
        self._http(
            "gone-http-nostream",
            "restarted behind its port, with no event stream: the session is gone (404)",
            Expect("recovers", "probe_error"),
            quiet,
            **legacy,
        )

        calls = self._service("calls", http, "--fault-tools", both)
        self._http("big-http", f"a {_MB} MB answer (JSON)", up, calls, **tolerant)
        self._http(
            "big-http-legacy", f"a {_MB} MB answer (one event of a stream)", up, calls, **tolerant, **legacy
        )
        self._http(
            "big-sse",
            f"a {_MB} MB answer (the SDK ends SSE streams at 1 MiB events)",
            Expect("recovers", "transport_error"),
            calls,
            sse,
            **tolerant,
        )
        self._http("slow-http", "a call slower than call_timeout", up, calls, call_timeout="1s", **tolerant)
        self._http(
            "slow-sse", "a call slower than call_timeout", up, calls, sse, call_timeout="1s", **tolerant
        )
        self._http(
            "hangup-http",
            "answer (JSON) cut during a call",
            Expect("recovers", "transport_error"),
            calls,
            **tolerant,
        )
        self._http(
            "hangup-http-legacy", "answer (event stream) cut during a call", up, calls, **tolerant, **legacy
        )

    def config(self) -> Path:
        path = self.workdir / "chaos.yaml"
        servers = "".join(
            f"  - {json.dumps(entry.config)}\n" for entry in self.entries.values()
        )  # JSON is YAML
        path.write_text(
            f"sidecar:\n  listen: {LOCALHOST}:{self.port}\n  admin_token_env: {TOKEN_ENV}\n"
            f"  gateway: {{listen: {self.gateway.removeprefix('http://').removesuffix('/mcp')}}}\n"
            "defaults:\n  connect_timeout: 10s\n  call_timeout: 30s\n"
            "  health: {interval: 1s, timeout: 2s, failure_threshold: 2}\n"
            "  reconnect: {initial_backoff: 100ms, max_backoff: 1s}\n"
            f"servers:\n{servers}"
        )
        return path

    # The run ------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.started

    def step(self, text: str) -> None:
        self.report.steps.append((self.now(), text))
        self.say(f"{self.now():6.2f}s  {text}")

    def run(
        self, startup_timeout: float = 120.0, settle_timeout: float = 30.0, steady: float = 0.0
    ) -> Report:
        """Start everything, wait for the servers that can connect (then `steady` seconds more, with
        only the faults that never stop: handshakes, crash loops), inject every other fault, wait
        for their effects, stop the sidecar with SIGTERM, and return what was seen."""
        report = self.report
        self.started = time.monotonic()
        for service in self.services.values():
            self.spawn(service.argv(), service.port)
        self.sidecar = self.start_sidecar(self.config(), env=os.environ | {TOKEN_ENV: self.token})
        self.step("started the sidecar and the HTTP servers")
        poller = Poller(self)
        poller.start()
        try:
            reachable = [n for n, e in self.entries.items() if e.expect.kind not in ("never", "loops")]
            if self._wait(
                lambda: all(self._state(n) == "active" for n in reachable),
                startup_timeout,
                "every server that can connect is active",
            ):
                report.up_at = self.now()
                poller.healthy_from = report.samples["/metrics"]
                time.sleep(steady)
                self._faults(settle_timeout)
        finally:
            poller.stop()
            self._stop_sidecar(poller)
            report.seconds = self.now()
        return report

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.step(f"timed out after {timeout:g}s: {what}")
                return False
            time.sleep(0.05)
        self.step(what)
        return True

    def _state(self, name: str) -> str | None:
        return self.report.last.state(name) if self.report.last is not None else None

    # Faults -------------------------------------------------------------------------------------

    def _faults(self, settle_timeout: float) -> None:
        """Every fault at once, each in its own thread; then wait until each has had its effect."""
        report = self.report
        report.before = report.last
        for name in self.entries:
            self._pid(name)
        self.step("faults")
        report.faults = (self.now(), 0.0)
        ran, waited = _schedstat(self.sidecar.process.pid)
        calls = {
            "big-stdio": ("big", {"megabytes": _MB}),
            "big-http": ("big", {"megabytes": _MB}),
            "big-http-legacy": ("big", {"megabytes": _MB}),
            "big-sse": ("big", {"megabytes": _MB}),
            "slow-stdio": ("sleep", {"seconds": SLOW_CALL}),
            "slow-http": ("sleep", {"seconds": SLOW_CALL}),
            "slow-sse": ("sleep", {"seconds": SLOW_CALL}),
            "hangup-stdio": ("hangup", {}),
            "hangup-http": ("hangup", {}),
            "hangup-http-legacy": ("hangup", {}),
            "garbage-stdio": ("garbage", {}),
            "e500-http": ("echo", {"text": "the last answer before the 500s"}),
        }
        # Callers of the gateway, two per era, each calling a faulty server and a healthy one in turn.
        plan = {name: (f"{name}__echo", {"text": f"through the gateway to {name}"}) for name in self.entries}
        faulty = [tool for name, tool in plan.items() if name not in report.healthy]
        callers = GatewayCallers(
            self.gateway,
            [*faulty, ("slow-http__sleep", {"seconds": SLOW_CALL})],
            [plan[name] for name in report.healthy],
        )
        callers.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(len(calls) + 3, thread_name_prefix="chaos") as pool:
                scripts = [pool.submit(self._stop_then_resume, name) for name in ("stop-stdio", "stop-http")]
                scripts += [
                    pool.submit(self._restart_behind_the_port, n) for n in ("gone-http", "gone-http-nostream")
                ]
                self._signal("kill-stdio", signal.SIGKILL)
                self._signal("kill-http", signal.SIGKILL)  # the process of kill-sse too
                scripts += [pool.submit(self._call, name, tool, args) for name, (tool, args) in calls.items()]
                for script in scripts:
                    script.result()
            self._wait(lambda: not self._unmet(), settle_timeout, "every fault had its effect")
        finally:
            callers.stop()
        report.gateway_calls, report.gateway_sessions_failed = callers.calls, callers.sessions_failed
        report.gateway_tools = list_gateway_tools(self.gateway)
        self.step(
            f"{len(callers.calls)} calls through the gateway; it offers {len(report.gateway_tools)} tools"
        )
        report.unmet = self._unmet()
        for name in self.entries:  # note the processes that replaced the ones that went
            self._pid(name)
        report.faults = (report.faults[0], self.now())
        ran_now, waited_now = _schedstat(self.sidecar.process.pid)
        report.sidecar_ran, report.sidecar_waited = ran_now - ran, waited_now - waited
        for name in ("gone-http", "gone-http-nostream"):
            self._call(name, "pid", key=f"{name}/after")

    def _unmet(self) -> dict[str, str]:
        report = self.report
        if report.before is None or report.last is None:
            return {"*": "no scrape"}
        found = {}
        for name, entry in self.entries.items():
            problem = unmet(entry.expect, name, report.before, report.last, report.ever.get(name, set()))
            if problem is not None:
                found[name] = problem
        return found

    def _stop_then_resume(self, name: str) -> None:
        """SIGSTOP; SIGCONT once the sidecar gave up on it (or after 15 s), if it is the same process."""
        pid = self._signal(name, signal.SIGSTOP)
        self._wait(lambda: self._state(name) != "active", 15, f"{name} left active")
        if pid is not None and self._pid(name) == pid:
            self._signal(name, signal.SIGCONT)

    def _restart_behind_the_port(self, name: str) -> None:
        """SIGKILL the serving child of a `--respawn` server; once its successor runs, call a tool
        with the old session: the successor knows nothing of it and answers 404."""
        old = self._signal(name, signal.SIGKILL)
        self._wait(lambda: self._pid(name) not in (None, old), 15, f"{name} restarted")
        self._call(name, "pid")

    def _pid(self, name: str) -> int | None:
        """The pid in the server's pidfile, if that process is alive and ours (else None); noted."""
        path = self.entries[name].pidfile
        try:
            pid = int(path.read_text()) if path is not None else 0
        except (OSError, ValueError):
            return None
        stat = proc_stat(pid) if pid else None
        if stat is None or stat[0] == "Z" or str(path) not in _cmdline(pid):
            return None  # gone, or a recycled pid: never signal it
        seen = self.report.pids.setdefault(name, [])
        if pid not in seen:
            seen.append(pid)
        return pid

    def _signal(self, name: str, sig: signal.Signals) -> int | None:
        pid = self._pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            self.step(f"{sig.name} {name} (pid {pid})")
        return pid

    def _call(
        self, server: str, tool: str, arguments: Mapping[str, Any] | None = None, key: str = ""
    ) -> Call:
        """POST /servers/{server}/tools/{tool} with the admin token, as an operator would."""
        call = Call(server, tool)
        request = urllib.request.Request(
            f"http://{LOCALHOST}:{self.port}/servers/{server}/tools/{tool}",
            data=json.dumps(arguments or {}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                call.status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            call.status, body = error.code, error.read()
        except OSError as error:
            call.status, body = -1, repr(error).encode()
        call.seconds = time.perf_counter() - started
        call.body = body.decode(errors="replace")
        self.report.calls[key or server] = call
        self.step(f"call {server}/{tool}: {call.status} after {call.seconds:.2f}s, {len(body):,} bytes")
        return call

    def _stop_sidecar(self, poller: Poller) -> None:
        """SIGTERM, timed; then every process the sidecar ever started must be gone."""
        report = self.report
        process = self.sidecar.process
        started = time.monotonic()
        report.log = self.sidecar.stop(signal.SIGTERM, timeout=20)
        report.exit_seconds = time.monotonic() - started
        report.exit_code = process.returncode
        self.step(f"SIGTERM: exit code {report.exit_code} after {report.exit_seconds:.2f}s")
        deadline = time.monotonic() + 2  # a SIGKILLed child may take a moment to go
        while (left := poller.children_alive()) and time.monotonic() < deadline:
            time.sleep(0.05)
        report.leftovers = left
        report.children_seen = len(poller.children)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of `pid`'s main thread so far."""
    try:
        ran, waited, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(ran) / 1e9, int(waited) / 1e9


def _starttime(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot): with the pid, it names one process for good."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


class Poller:
    """Times and checks every answer of `/livez`, `/metrics` and `/health/mcp` for the whole run.

    The requests come from `chaos_poll.py`, a process of its own, so that the time taken to
    check a sample (a parse holds this process's GIL) never counts in an answer's time; this
    process reads its lines and checks each sample, and notes every child of the sidecar.
    """

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        self.report = chaos.report
        self.sidecar_pid = chaos.sidecar.process.pid
        self.healthy_from: int | None = None  # set once the healthy servers must be active
        self.children: dict[int, int | None] = {}  # pid: start time
        self._checks: dict[str, Callable[[str], None] | None] = {
            "/livez": None,
            "/metrics": self._check_metrics,
            "/health/mcp": self._check_health,
        }
        for path in self._checks:
            self.report.latencies[path], self.report.failures[path], self.report.samples[path] = [], [], 0
        self._answered: set[str] = set()
        self._stop = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        periods = [f"{path}={period}" for path, period in POLL_PERIOD.items()]
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("chaos_poll.py")),
                f"http://{LOCALHOST}:{self.chaos.port}",
                *periods,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._threads = [
            threading.Thread(target=self._read, name="chaos-read", daemon=True),
            threading.Thread(target=self._watch_children, name="chaos-children", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # type: ignore[union-attr]
            try:
                process.wait(2 * _REQUEST_TIMEOUT)  # its threads finish the request they are in
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for thread in self._threads:
            thread.join(5)

    def _violation(self, text: str) -> None:
        if len(self.report.violations) < 200:
            self.report.violations.append(f"{self.chaos.now():.2f}s {text}")

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            if not line.endswith("\n"):
                break  # the poller was stopped in the middle of a line
            record = json.loads(line)
            path, t = record["path"], record["t"] - self.chaos.started
            if record["status"] != 200:
                if path in self._answered:  # errors count once the ops server has answered
                    self.report.failures[path].append(f"{t:.2f}s {record['status']} {record['body'][:200]!r}")
                continue
            self._answered.add(path)
            self.report.latencies[path].append((t, record["seconds"]))
            self.report.samples[path] += 1
            check = self._checks[path]
            try:
                if check is not None:
                    check(record["body"])
            except Exception as exc:  # a sample that does not even parse is a violation too
                self._violation(f"{path}: {type(exc).__name__}: {exc}")

    def _check_metrics(self, body: str) -> None:
        report = self.report
        scrape = Scrape(body, buckets=report.samples["/metrics"] % 10 == 1)  # whole, now and then
        for problem in metrics_violations(scrape, report.names):
            self._violation(f"/metrics: {problem}")
        if report.last is not None:
            for problem in counter_regressions(report.last, scrape):
                self._violation(f"/metrics: {problem}")
        report.last = scrape
        for name in report.names:
            if (state := scrape.state(name)) is not None:
                report.ever.setdefault(name, set()).add(state)
        if self.healthy_from is not None:
            for name in report.healthy:
                for problem in healthy_violations(scrape, name):
                    self._violation(f"/metrics: healthy {problem}")

    def _check_health(self, body: str) -> None:
        doc = json.loads(body)
        for problem in health_violations(doc, self.report.names):
            self._violation(f"/health/mcp: {problem}")
        if self.healthy_from is not None:
            for server in doc["servers"]:
                sick = server["state"] != "active" or server["consecutive_failures"]
                if server["name"] in self.report.healthy and sick:
                    self._violation(f"/health/mcp: healthy {server['name']}: {server}")

    def _watch_children(self) -> None:
        while not self._stop.wait(0.1):
            for child in direct_children(self.sidecar_pid):
                if child not in self.children:
                    self.children[child] = _starttime(child)

    def children_alive(self) -> list[str]:
        """Children of the sidecar seen during the run that are still alive (same pid and start)."""
        return [
            f"pid {pid} ({_cmdline(pid)[:120]})"
            for pid, start in self.children.items()
            if (stat := proc_stat(pid)) is not None and stat[0] != "Z" and _starttime(pid) == start
        ]
