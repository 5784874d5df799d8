"""Many streamable-HTTP servers on one sidecar: start, responsiveness, steady cost (issue #11, item 1).

Starts `many_servers.py` host processes (250 endpoints each), writes a config of N
servers with 5 s probes, runs the real CLI, and measures while it starts and after:

- `/livez` latency, polled every 50 ms from the start of the process (max and p99),
  and how many polls got no answer within 1 s;
- time until `/health/mcp` says every server is active;
- steady CPU (share of one core, over 20 s once all are active) and RSS;
- `/metrics` scrape time (p50 of 20);
- how fast the host was: the share of its CPU time stolen by the hypervisor over the run,
  and a fixed pure-Python loop's time just before it (on this VM a neighbour made the same
  code 2-3x slower; compare runs only where these are alike).

    .venv/bin/python benchmarks/bench_scale.py N [N ...]      # e.g. 10 100 1000
    .venv/bin/python benchmarks/bench_scale.py --stdio 200    # N stdio servers (tiny_server.py) instead
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    LOCALHOST,
    TINY,
    cpu_seconds,
    free_port,
    host_cpu_seconds,
    percentile,
    port_open,
    reference_work_ms,
    result_line,
    row,
    rss_mb,
    say,
    wait_until,
)
from bench_manager import _sidecar_command

PER_HOST = 250
POLL, LIVEZ_TIMEOUT = 0.05, 1.0
ACTIVE_DEADLINE, STEADY_WINDOW, SCRAPES = 120.0, 20.0, 20
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def _get(port: int, path: str, timeout: float) -> bytes | None:
    try:
        with _OPENER.open(f"http://{LOCALHOST}:{port}{path}", timeout=timeout) as response:
            return response.read()
    except OSError:
        return None


class _LivezPoller(threading.Thread):
    """Polls /livez every 50 ms in its own thread, so a slow answer never delays the next poll's start."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.latencies: list[float] = []
        self.missed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            answered = _get(self.port, "/livez", LIVEZ_TIMEOUT) is not None
            took = time.perf_counter() - started
            if answered:
                self.latencies.append(took)
            elif port_open(self.port):
                self.missed += 1  # listening, but no answer in time: the loop is starved
            self.stop.wait(max(0.0, POLL - took))


def _config(workdir: Path, n: int, host_ports: list[int], ops_port: int, stdio: bool = False) -> Path:
    lines = [
        "sidecar:",
        f"  listen: {LOCALHOST}:{ops_port}",
        "  gateway: {enabled: false}",
        "defaults:",
        "  connect_timeout: 60s",
        "  health: {interval: 5s, timeout: 2s}",
        "servers:",
    ]
    for i in range(n):
        if stdio:
            args = json.dumps([str(TINY)])
            lines.append(
                f"  - {{name: s{i}, transport: stdio, command: {json.dumps(sys.executable)}, args: {args}}}"
            )
            continue
        url = f"http://{LOCALHOST}:{host_ports[i // PER_HOST]}/s{i}/mcp"
        lines.append(f"  - {{name: s{i}, transport: streamable-http, url: {json.dumps(url)}}}")
    path = workdir / "scale.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _measure(n: int, workdir: Path, stdio: bool = False) -> dict[str, Any]:
    host_ports = [] if stdio else [free_port() for _ in range((n + PER_HOST - 1) // PER_HOST)]
    hosts = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("many_servers.py")), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in host_ports
    ]
    sidecar: subprocess.Popen[bytes] | None = None
    poller: _LivezPoller | None = None
    try:
        if not wait_until(lambda: all(port_open(p) for p in host_ports), timeout=30):
            raise RuntimeError("the host processes did not listen within 30 s")
        ops_port = free_port()
        config = _config(workdir, n, host_ports, ops_port, stdio)
        reference_ms, host_before = reference_work_ms(), host_cpu_seconds()
        with open(workdir / "sidecar.log", "wb") as log:
            started = time.perf_counter()
            sidecar = subprocess.Popen(
                [*_sidecar_command(), "run", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        poller = _LivezPoller(ops_port)
        poller.start()
        all_active = None
        while time.perf_counter() - started < ACTIVE_DEADLINE and sidecar.poll() is None:
            body = _get(ops_port, "/health/mcp", 5)
            if body and json.loads(body).get("active_count") == n:
                all_active = time.perf_counter() - started
                break
            time.sleep(0.25)
        start_latencies, start_missed = list(poller.latencies), poller.missed
        cpu_before, steady_started = cpu_seconds(sidecar.pid), time.perf_counter()
        time.sleep(STEADY_WINDOW)
        steady_cpu = (cpu_seconds(sidecar.pid) - cpu_before) / (time.perf_counter() - steady_started)
        scrapes = []
        for _ in range(SCRAPES):
            t = time.perf_counter()
            _get(ops_port, "/metrics", 10)
            scrapes.append(time.perf_counter() - t)
        body = _get(ops_port, "/health/mcp", 5)
        losses = _losses(workdir / "sidecar.log")
        host_after = host_cpu_seconds()
        return {
            "servers": n,
            "hosts": len(hosts),
            "all_active": all_active,
            "active_at_end": json.loads(body).get("active_count") if body else None,
            "livez_max_ms": max(start_latencies) * 1000 if start_latencies else None,
            "livez_p99_ms": percentile(start_latencies, 99) * 1000 if start_latencies else None,
            "livez_missed": start_missed,
            "livez_polls": len(start_latencies) + start_missed,
            "steady_cpu_core_share": steady_cpu,
            "rss_mb": rss_mb(sidecar.pid),
            "metrics_p50_ms": statistics.median(scrapes) * 1000,
            "losses": losses,  # reason -> count, over the whole run: a healthy run has none
            "reference_work_ms": reference_ms,  # the host's speed just before the run
            # The share of the machine's CPU time the hypervisor gave to others during the run.
            "host_steal_share": (host_after[1] - host_before[1]) / max(host_after[0] - host_before[0], 1e-9),
        }
    finally:
        if poller is not None:
            poller.stop.set()
        for process in ([sidecar] if sidecar else []) + hosts:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def _losses(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"event":"lost"' in line:
            reason = json.loads(line).get("reason", "?")
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def main(argv: list[str]) -> int:
    stdio = "--stdio" in argv
    sizes = [int(a) for a in argv if a != "--stdio"] or [10, 100, 1000]
    kind = "stdio (tiny_server.py)" if stdio else "streamable-HTTP"
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            r = _measure(n, Path(tmp), stdio)
        say(f"  {n} servers: {json.dumps(r)}")
        met = (
            r["all_active"] is not None
            and r["all_active"] <= 10
            and (r["livez_max_ms"] or 1e9) <= 100
            and r["livez_missed"] == 0
            and r["steady_cpu_core_share"] <= 0.25
            and r["rss_mb"] <= 300
            and r["metrics_p50_ms"] <= 50
            and not r["losses"]
        )
        all_active = f"{r['all_active']:.2f} s" if r["all_active"] is not None else "never"
        rows.append(
            row(
                f"s{n}{'-stdio' if stdio else ''}",
                f"{n} {kind} servers ({r['hosts'] or n} processes), 5 s probes",
                "all active <= 10 s; /livez <= 100 ms throughout; steady CPU <= 25% of a core; "
                "RSS <= 300 MB; /metrics p50 <= 50 ms",
                f"all active {all_active}; /livez max {r['livez_max_ms']:.0f} ms, "
                f"p99 {r['livez_p99_ms']:.0f} ms, "
                f"{r['livez_missed']}/{r['livez_polls']} unanswered in 1 s; steady CPU "
                f"{r['steady_cpu_core_share'] * 100:.1f}%; RSS {r['rss_mb']:.0f} MB; "
                f"/metrics p50 {r['metrics_p50_ms']:.1f} ms; {sum(r['losses'].values())} losses; "
                f"host steal {r['host_steal_share'] * 100:.1f}%, "
                f"reference work {r['reference_work_ms']:.1f} ms",
                met,
                **r,
            )
        )
    print(result_line({"rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
