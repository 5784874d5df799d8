"""Benchmarks of `/metrics`: rendering for 1,000 servers, and a SIGKILL's way to `mcp_server_up 0`.

    python benchmarks/bench_metrics.py render_1000
    python benchmarks/bench_metrics.py render_ab [REV]  # this tree against REV (default: its fork of main)
    python benchmarks/bench_metrics.py kill_to_metrics

`render_1000` times `SidecarMetrics.render()` (what the `/metrics` handler runs) for
1,000 configured servers in four situations, and one HTTP scrape through the real aiohttp
app. `render_ab` times the main situation (every server probed since the last scrape) for
this tree's `SidecarMetrics` and for the one in git revision REV, loaded side by side in one
process and measured alternately, so both see the same machine load. `kill_to_metrics`
runs the real `mcp-sidecar` CLI with one stdio server, SIGKILLs the
server by pid and polls `/metrics` until `mcp_server_up{server=...}` reads 0; 20 runs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
from aiohttp import ClientSession, ClientTimeout, web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LOCALHOST, TINY, Row, free_port, ms, result_line, row, say, summary

from sidecar import MCPServerManager
from sidecar.events import Connected, HealthCheckPassed, Phase, ToolCalled
from sidecar.state import ServerState, ServerStatus
from sidecar.telemetry.metrics import SidecarMetrics
from sidecar.web.ops import Admin, build_app

SERVERS = 1000
SCRAPES = 50


def _statuses(n: int) -> list[ServerStatus]:
    return [
        ServerStatus(
            name=f"server-{i:04d}",
            transport="stdio" if i % 3 else "streamable-http",
            criticality="critical" if i % 10 == 0 else "optional",
            state=ServerState.ACTIVE,
            since=time.time(),
            tools=tuple(f"tool_{t}" for t in range(5)),
            protocol_version="2025-11-25",
            server_name=f"impl-{i % 7}",
            server_version="1.0.0",
        )
        for i in range(n)
    ]


def _event(kind: Any, status: ServerStatus, **fields: Any) -> Any:
    return kind(
        server=status.name,
        transport=status.transport,
        criticality=status.criticality,
        state=status.state,
        previous=status.state,
        ts=time.time(),
        **fields,
    )


def _time(render: Any, before: Any = None, times: int = SCRAPES) -> list[float]:
    samples = []
    for _ in range(times):
        if before is not None:
            before()
        started = time.perf_counter()
        render()
        samples.append(time.perf_counter() - started)
    return samples


def _live(metrics: Any, statuses: list[ServerStatus]) -> list[Any]:
    """Feed what a live sidecar has seen (a connect with its two calls, a tool call) so that
    every histogram has data; return one probe event per server."""
    now = time.time()
    phases = (Phase("initialize", now - 1.2, now - 0.4), Phase("tools/list", now - 0.4, now))
    for status in statuses:
        metrics.observe(_event(Connected, status, attempt=0, duration=1.2, protocol_version="2025-11-25",
                               server_name="x", server_version="1", tools=(), phases=phases))  # fmt: skip
        metrics.observe(_event(ToolCalled, status, tool="tool_0", duration=0.05, error_type=None))
    return [_event(HealthCheckPassed, status, duration=0.002, method="ping") for status in statuses]


def bench_render_1000() -> list[Row]:
    statuses = _statuses(SERVERS)
    metrics = SidecarMetrics(lambda: statuses)
    probes = _live(metrics, statuses)

    def probe_all() -> None:
        for probe in probes:
            metrics.observe(probe)

    def change_all_states() -> None:
        for i, status in enumerate(statuses):
            state = ServerState.RECONNECTING if status.state is ServerState.ACTIVE else ServerState.ACTIVE
            statuses[i] = dataclasses.replace(status, state=state, since=time.time())
        probe_all()

    cold = _time(lambda: SidecarMetrics(lambda: statuses).render(), times=10)
    body, _ = metrics.render(openmetrics=True)
    cases = {
        "no change since the last scrape": _time(lambda: metrics.render(openmetrics=True)),
        "every server probed since the last scrape": _time(
            lambda: metrics.render(openmetrics=True), probe_all
        ),
        "every server changed state and was probed": _time(
            lambda: metrics.render(openmetrics=True), change_all_states
        ),
        "first scrape (nothing rendered yet)": cold,
    }
    http = anyio.run(_http_scrapes, metrics, probe_all)
    lines = body.count(b"\n")
    say(f"  {SERVERS} servers: {lines} lines, {len(body) / 1e6:.1f} MB per scrape (OpenMetrics)")
    for case, values in cases.items():
        say(f"  render, {case}: median {ms(statistics.median(values))}, max {ms(max(values))}")
    say(f"  HTTP GET /metrics through aiohttp, probes in between: median {ms(statistics.median(http))}")
    main_case = cases["every server probed since the last scrape"]
    return [
        row(
            "m1",
            f"/metrics for {SERVERS} configured servers ({lines} lines), every server probed since the last "
            "scrape",
            "<= 20 ms (median)",
            "; ".join(f"{case}: median {ms(statistics.median(v))}" for case, v in cases.items())
            + f"; whole HTTP round trip: median {ms(statistics.median(http))}",
            statistics.median(main_case) <= 0.020,
            cases={case: summary(v) for case, v in cases.items()},
        )
    ]


async def _http_scrapes(metrics: SidecarMetrics, between: Any) -> list[float]:
    """Scrapes through the real ops app on a local port (`/metrics` never asks its manager)."""
    app = build_app(MCPServerManager([]), metrics, Admin(token=None))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOCALHOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    samples = []
    try:
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            for _ in range(20):
                between()
                started = time.perf_counter()
                headers = {"Accept": "application/openmetrics-text"}
                async with session.get(f"http://{LOCALHOST}:{port}/metrics", headers=headers) as response:
                    await response.read()
                samples.append(time.perf_counter() - started)
    finally:
        with anyio.fail_after(10, shield=True):
            await runner.cleanup()
    return samples


# -- SIGKILL to mcp_server_up 0 ----------------------------------------------------------------


def _up(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/metrics", timeout=1) as response:
            for line in response.read().decode().splitlines():
                if line.startswith('mcp_server_up{server="tiny"'):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        return None
    return None


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.0) -> float:
    """Poll `predicate` every `interval` s (0: back to back, for the measured wait) until it holds."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if predicate():
            return time.perf_counter() - started
        if interval:
            time.sleep(interval)
    raise TimeoutError(what)


def bench_kill_to_metrics(runs: int = 20) -> list[Row]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        config = Path(tmp) / "sidecar.yaml"
        config.write_text(
            f"sidecar: {{listen: '{LOCALHOST}:{port}'}}\n"
            "servers:\n"
            f"  - {{name: tiny, transport: stdio, command: {json.dumps(sys.executable)}, "
            f"args: {json.dumps(['-I', '-S', str(TINY)])}, "
            "health: {interval: 60s}, reconnect: {initial_backoff: 200ms, jitter: 0}}\n"
        )
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        latencies = []
        try:
            for _ in range(runs):
                _wait(lambda: _up(port) == 1, 15, "tiny up", interval=0.02)
                pid = _pid_of_child(sidecar.pid)
                os.kill(pid, signal.SIGKILL)
                killed = time.perf_counter()
                _wait(lambda: _up(port) == 0, 5, "up 0")
                latencies.append(time.perf_counter() - killed)
        finally:
            sidecar.send_signal(signal.SIGTERM)
            try:
                sidecar.wait(10)
            except subprocess.TimeoutExpired:
                sidecar.kill()
                sidecar.wait(5)
    s = summary(latencies)
    say("  SIGKILL to mcp_server_up 0 on /metrics (ms): " + ", ".join(f"{v * 1000:.1f}" for v in latencies))
    return [
        row(
            "m2",
            f"stdio server SIGKILLed: `mcp_server_up` 0 on /metrics of the running CLI, {runs} runs "
            "(polling /metrics back to back)",
            "<= 100 ms",
            f"median {ms(s['median'])}, max {ms(s['max'])}",
            s["median"] <= 0.100,
            latencies=latencies,
        )
    ]


def _pid_of_child(parent: int) -> int:
    """The sidecar's one child: the tiny server (exec'd through setpriv, so the pid is its own)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


# -- this tree against another revision, in one process -----------------------------------------


def _metrics_at(rev: str) -> Any:
    """`sidecar.telemetry.metrics` as it was at `rev`, loaded beside this tree's (same events/state)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:sidecar/telemetry/metrics.py"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    spec = importlib.util.spec_from_loader("sidecar.telemetry._metrics_baseline", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "sidecar.telemetry"  # its relative imports resolve to this tree's events, state
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:sidecar/telemetry/metrics.py", "exec"), module.__dict__)
    return module


def bench_render_ab(rev: str = "", rounds: int = 200) -> list[Row]:
    rev = rev or subprocess.run(
        ["git", "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()[:12]
    builds = {"before": _metrics_at(rev).SidecarMetrics, "after": SidecarMetrics}
    runs: dict[str, tuple[Any, list[Any]]] = {}
    for name, build in builds.items():
        statuses = _statuses(SERVERS)
        metrics = build(lambda statuses=statuses: statuses)
        runs[name] = (metrics, _live(metrics, statuses))
        metrics.render(openmetrics=True)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):  # alternate, so a burst of load on the machine hits both alike
        for name, (metrics, probes) in runs.items():
            for probe in probes:
                metrics.observe(probe)
            started = time.perf_counter()
            metrics.render(openmetrics=True)
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    lines = {name: metrics.render(openmetrics=True)[0].count(b"\n") for name, (metrics, _) in runs.items()}
    ratio = medians["after"] / medians["before"]
    for name in runs:
        say(f"  {name} ({rev if name == 'before' else 'this tree'}): {lines[name]} lines, "
            f"median {ms(medians[name])}, p90 {ms(sorted(times[name])[int(rounds * 0.9)])}")  # fmt: skip
    say(f"  after / before: {ratio:.2f}")
    return [
        row(
            "m1ab",
            f"/metrics for {SERVERS} servers, every server probed since the last scrape: this tree "
            f"({lines['after']} lines) against {rev} ({lines['before']} lines), {rounds} alternating renders",
            "after <= 1.2 x before (medians)",
            f"before {ms(medians['before'])}, after {ms(medians['after'])}: x{ratio:.2f}",
            ratio <= 1.2,
            before=summary(times["before"]),
            after=summary(times["after"]),
        )
    ]


BENCHMARKS = {
    "render_1000": bench_render_1000,
    "render_ab": bench_render_ab,
    "kill_to_metrics": bench_kill_to_metrics,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS or (len(argv) > 1 and argv[0] != "render_ab") or len(argv) > 2:
        print(f"usage: {Path(__file__).name} {{{','.join(BENCHMARKS)}}} [REV]", file=sys.stderr)
        return 2
    print(result_line({"rows": BENCHMARKS[argv[0]](*argv[1:])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
