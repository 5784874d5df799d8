"""Running the real `mcp-sidecar` command in tests: configs, processes, polling with deadlines."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "tests" / "servers" / "behaving.py"
CLI = [sys.executable, "-m", "sidecar"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns something truthy, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/mcp", timeout=1) as response:
            return json.load(response)
    except OSError:
        return None


def write_config(tmp_path: Path, port: int, servers: str, sidecar_extra: str = "") -> Path:
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        f"sidecar:\n  listen: 127.0.0.1:{port}\n{sidecar_extra}"
        "defaults:\n  connect_timeout: 10s\n  health: {interval: 500ms, timeout: 1s}\n"
        "  reconnect: {initial_backoff: 100ms, max_backoff: 500ms}\n"
        f"servers:\n{servers}"
    )
    return config


def stdio_server(name: str, pidfile: Path, *flags: str, critical: bool = False) -> str:
    args = ", ".join(json.dumps(a) for a in [str(SERVER), "--pidfile", str(pidfile), *flags])
    criticality = "critical" if critical else "optional"
    return (
        f"  - {{name: {name}, transport: stdio, command: {json.dumps(sys.executable)}, "
        f"args: [{args}], criticality: {criticality}}}\n"
    )


@pytest.fixture
def sidecar_process() -> Iterator[list[subprocess.Popen[str]]]:
    """Sidecars started by a test; killed (by PID) if the test left one running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def start(config: Path, started: list[subprocess.Popen[str]], *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*CLI, "run", "-c", str(config), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    return process


