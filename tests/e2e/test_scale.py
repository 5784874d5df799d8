"""The reduced form of the scale benchmark (issue #11, item 1; `benchmarks/bench_scale.py` has the
full one): 200 streamable-HTTP servers on one host process and 50 stdio servers, one sidecar.

Asserted are conditions, each with a deadline, never a wall-clock claim: every server comes up;
then, over several probe periods, every one is probed again and again and none is lost; the ops
endpoints answer throughout; SIGTERM ends it all with exit 0 and no child left.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from support import LOCALHOST, REPO

from .harness import Sidecars, free_port, health, wait_for

if TYPE_CHECKING:
    from conftest import Service

HTTP_SERVERS, STDIO_SERVERS = 200, 50
HOST = REPO / "benchmarks" / "many_servers.py"  # one SDK server behind /s0/mcp, /s1/mcp, ...
TINY = REPO / "benchmarks" / "tiny_server.py"  # a raw JSON-RPC stdio server: no SDK import
PROBE_COUNT = re.compile(
    r'^mcp_server_health_check_duration_seconds_count\{[^}]*server="([^"]+)"[^}]*\} (\d+)', re.M
)


def _config(tmp_path: Path, port: int, host_port: int) -> Path:
    lines = [
        "sidecar:",
        f"  listen: {LOCALHOST}:{port}",
        "  gateway: {enabled: false}",
        "defaults:",
        "  connect_timeout: 60s",
        # Probes start at least `timeout` apart; 2 s is generous for a local answer on a busy host.
        "  health: {interval: 1s, timeout: 2s}",
        "servers:",
    ]
    for i in range(HTTP_SERVERS):
        url = f"http://{LOCALHOST}:{host_port}/s{i}/mcp"
        lines.append(f"  - {{name: h{i}, transport: streamable-http, url: {json.dumps(url)}}}")
    tiny = json.dumps([str(TINY)])
    for i in range(STDIO_SERVERS):
        lines.append(
            f"  - {{name: t{i}, transport: stdio, command: {json.dumps(sys.executable)}, args: {tiny}}}"
        )
    path = tmp_path / "scale.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _probes(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {server: int(count) for server, count in PROBE_COUNT.findall(text)}


def _livez(port: int) -> bool:
    with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/livez", timeout=30) as response:
        return response.status == 200


@pytest.mark.timeout(400)  # its own deadlines (start, all active, probes, stop) say what went wrong first
def test_250_servers_come_up_stay_up_and_are_probed(
    tmp_path: Path, services: Callable[..., Service], sidecars: Sidecars
) -> None:
    host_port, port = free_port(), free_port()
    host = services([sys.executable, str(HOST), "--port", str(host_port)], port=host_port, path="/s0/mcp")
    anyio.run(host.start)
    total = HTTP_SERVERS + STDIO_SERVERS
    sidecar = sidecars(_config(tmp_path, port, host_port))

    def all_active() -> dict | None:
        document = health(port)
        return document if document and document["active_count"] == total else None

    wait_for(all_active, timeout=180, what=f"all {total} servers active")
    first = _probes(port)
    assert len(first) == total, sorted(set(first))
    # Several probe periods: every server probed at least twice more, none lost, ops answering.
    deadline = time.monotonic() + 120
    while True:
        assert _livez(port)
        document = health(port)
        assert document is not None and document["active_count"] == total, document
        later = _probes(port)
        if all(later[name] >= first[name] + 2 for name in first):
            break
        assert time.monotonic() < deadline, {
            n: (first[n], later[n]) for n in first if later[n] < first[n] + 2
        }
        time.sleep(0.5)
    logs = sidecar.stop(signal.SIGTERM, timeout=30)
    assert sidecar.returncode == 0, logs[-2000:]
    lost = [line for line in logs.splitlines() if '"event":"lost"' in line]
    assert not lost, lost[:5]
    assert "Traceback" not in logs
