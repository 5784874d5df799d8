"""Benchmark: the CPU the OTLP metrics export costs a sidecar with 1,000 servers.

    python benchmarks/bench_otlp.py [http/protobuf|grpc]     # default: both

A `SidecarMetrics` for 1,000 active servers, fed what a live sidecar sees (a connect with
its two calls, a tool call, then probes), is exported through `configure_metric_export`
(the real MeterProvider and OTLP exporter) to a collector stand-in in another process on
127.0.0.1 that answers every export with success. Measured in this process:

- the CPU of one export (collect + encode + send), by `time.process_time` around the SDK's
  `force_flush` (which exports in the calling thread), 20 exports; its share of one core
  at a 10 s `OTEL_METRIC_EXPORT_INTERVAL` is that divided by 10 s;
- the CPU the export adds to each histogram observation (the OTel instrument's `record`),
  from 20 rounds of 1,000 probe events with and without the export attached; its share at
  one probe per server every 5 s (200 probes per second).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LOCALHOST, Row, free_port, ms, result_line, row, say, summary
from bench_metrics import _live, _statuses

from sidecar.telemetry.metrics import SidecarMetrics
from sidecar.telemetry.otlp_metrics import configure_metric_export, shutdown_metric_export

SERVERS = 1000
INTERVAL = 10.0  # seconds between exports
PROBES_PER_SECOND = SERVERS / 5.0  # the default probe interval
EXPORTS = 20
ROUNDS = 20

# A collector stand-in: OTLP/HTTP and OTLP/gRPC metric exports, answered with success.
_COLLECTOR = """
import sys, threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import grpc

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

http = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
threading.Thread(target=http.serve_forever, daemon=True).start()
handler = grpc.method_handlers_generic_handler(
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
    {"Export": grpc.unary_unary_rpc_method_handler(lambda body, context: b"",
                                                   response_serializer=lambda b: b)},
)
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port(f"127.0.0.1:{sys.argv[2]}")
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
"""


def _configure(protocol: str, http_port: int, grpc_port: int) -> Any:
    port = http_port if protocol == "http/protobuf" else grpc_port
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]
    os.environ.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{LOCALHOST}:{port}",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_METRIC_EXPORT_INTERVAL=str(int(INTERVAL * 1000)),
    )
    return configure_metric_export("bench")


def _feed_cpu(metrics: SidecarMetrics, probes: list[Any]) -> list[float]:
    """CPU seconds per round of one probe event per server."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for probe in probes:
            metrics.observe(probe)
        rounds.append(time.process_time() - started)
    return rounds


def bench(protocol: str, http_port: int, grpc_port: int) -> Row:
    plain_statuses = _statuses(SERVERS)
    plain = SidecarMetrics(lambda: plain_statuses)
    plain_probes = _live(plain, plain_statuses)
    statuses = _statuses(SERVERS)
    metrics = SidecarMetrics(lambda: statuses)
    export = _configure(protocol, http_port, grpc_port)
    assert export is not None
    export.attach(metrics)
    probes = _live(metrics, statuses)
    try:
        without, with_export = _feed_cpu(plain, plain_probes), _feed_cpu(metrics, probes)
        cpu, wall = [], []
        for _ in range(EXPORTS):
            for probe in probes[:200]:  # some change between exports, as in a live sidecar
                metrics.observe(probe)
            started, started_wall = time.process_time(), time.perf_counter()
            assert export.provider.force_flush(timeout_millis=30_000)  # exports in this thread
            cpu.append(time.process_time() - started)
            wall.append(time.perf_counter() - started_wall)
        points = sum(len(v) for v in metrics.contract_samples().values())
    finally:
        shutdown_metric_export(export, 10.0)
    per_export = statistics.median(cpu)
    per_event = (statistics.median(with_export) - statistics.median(without)) / SERVERS
    export_share = per_export / INTERVAL
    record_share = per_event * PROBES_PER_SECOND
    cpu_median, wall_median = ms(per_export), ms(statistics.median(wall))
    say(f"  {protocol}: one export of {SERVERS} servers (~{points} gauge/counter points and every histogram "
        f"series): CPU median {cpu_median} (max {ms(max(cpu))}), wall median {wall_median}")  # fmt: skip
    rounds = f"{ms(statistics.median(without))} without, {ms(statistics.median(with_export))} with"
    say(f"  {protocol}: per probe event, recording for OTLP adds {per_event * 1e6:.1f} us CPU "
        f"(probe round: {rounds})")  # fmt: skip
    say(f"  {protocol}: share of one core: exports {export_share:.2%} at {INTERVAL:g} s, recording "
        f"{record_share:.2%} at {PROBES_PER_SECOND:g} probes/s")  # fmt: skip
    return row(
        f"o1-{protocol}",
        f"OTLP metrics export ({protocol}) of a sidecar with {SERVERS} servers, export interval "
        f"{INTERVAL:g} s, probes every 5 s",
        "(measured; no bound set)",
        f"{ms(per_export)} CPU per export = {export_share:.2%} of a core; recording {per_event * 1e6:.1f} us "
        f"per observation = {record_share:.2%}; total {export_share + record_share:.2%}",
        None,
        export_cpu=summary(cpu),
        export_wall=summary(wall),
        record_us=per_event * 1e6,
    )


def main(argv: list[str]) -> int:
    protocols = argv or ["http/protobuf", "grpc"]
    if any(p not in ("http/protobuf", "grpc") for p in protocols):
        print(f"usage: {Path(__file__).name} [http/protobuf|grpc]", file=sys.stderr)
        return 2
    http_port, grpc_port = free_port(), free_port()
    collector = subprocess.Popen(
        [sys.executable, "-c", _COLLECTOR, str(http_port), str(grpc_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert collector.stdout is not None and collector.stdout.readline().strip() == "ready"
        rows = [bench(protocol, http_port, grpc_port) for protocol in protocols]
    finally:
        collector.kill()
        collector.wait(10)
    print(result_line({"rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
