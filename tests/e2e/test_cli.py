"""The `mcp-sidecar` command as a user runs it: a real process, real servers, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .harness import (
    CLI,
    REPO,
    SidecarProcess,
    alive,
    free_port,
    health,
    stdio_server,
    wait_for,
    write_config,
)


def test_version() -> None:
    out = subprocess.run([*CLI, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.startswith("mcp-sidecar ") and "(mcp 2." in out


def test_check_accepts_the_demo_config() -> None:
    result = subprocess.run(
        [*CLI, "check", "-c", "examples/demo.yaml"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "ok, 5 servers" in result.stdout


def test_check_reports_each_problem_on_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "servers:\n"
        "  - {name: a, transport: stdio, command: x, connect_timeout: -1s}\n"
        "  - {name: b, transport: carrier-pigeon}\n"
        "  - {name: c, transport: streamable-http, url: 'http://127.0.0.1:1/mcp', frobnicate: 1}\n"
    )
    result = subprocess.run([*CLI, "check", "-c", str(bad)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith(f"{bad}: servers[") for line in lines)
    assert "(a).connect_timeout" in lines[0]
    assert "(b).transport" in lines[1]
    assert "(c).frobnicate" in lines[2] and "unknown key" in lines[2]


def test_run_with_a_bad_config_starts_nothing(tmp_path: Path) -> None:
    port = free_port()
    pidfile = tmp_path / "never.pid"
    config = write_config(tmp_path, port, stdio_server("ok", pidfile) + "  - {name: ok, transport: stdio}\n")
    result = subprocess.run([*CLI, "run", "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "duplicate server name 'ok'" in result.stderr
    assert not pidfile.exists()  # no server was spawned
    assert health(port) is None


def test_run_serves_health_and_stops_cleanly_on_sigterm(
    tmp_path: Path, sidecars: Callable[..., SidecarProcess]
) -> None:
    port = free_port()
    pids = [tmp_path / f"s{i}.pid" for i in range(3)]
    config = write_config(
        tmp_path,
        port,
        stdio_server("alpha", pids[0], critical=True)
        + stdio_server("beta", pids[1])
        + stdio_server("stubborn", pids[2], "--ignore-sigterm"),
    )
    sidecar = sidecars(config)
    document = wait_for(
        lambda: (doc := health(port)) and doc["active_count"] == 3 and doc, 30, "3 active servers"
    )
    assert document["status"] == "healthy"
    assert {server["name"] for server in document["servers"]} == {"alpha", "beta", "stubborn"}

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
        assert response.status == 200
    table = subprocess.run(
        [*CLI, "status", "--url", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert table.startswith("healthy: 3/3 active")
    assert "stubborn" in table and "active" in table

    server_pids = [int(path.read_text()) for path in pids]
    began = time.monotonic()
    stderr = sidecar.stop(signal.SIGTERM)
    took = time.monotonic() - began
    assert sidecar.returncode == 0, stderr
    assert took < 3.0, f"shutdown took {took:.2f}s"
    assert not [pid for pid in server_pids if alive(pid)], "a server outlived the sidecar"

    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    kinds = [(event["server"], event["event"]) for event in events]
    for name in ("alpha", "beta", "stubborn"):
        assert (
            kinds.index((name, "connecting"))
            < kinds.index((name, "connected"))
            < kinds.index((name, "stopped"))
        )
    assert all({"ts", "level", "event", "server", "state"} <= event.keys() for event in events)


def test_readyz_reports_a_down_critical_server(
    tmp_path: Path, sidecars: Callable[..., SidecarProcess]
) -> None:
    port = free_port()
    config = write_config(
        tmp_path, port, stdio_server("needed", tmp_path / "n.pid", "--crash-at-start", critical=True)
    )
    sidecar = sidecars(config)

    def readyz() -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return None

    status, body = wait_for(lambda: (r := readyz()) and "exited" in r[1] and r, 30, "a 503 naming the exit")
    assert status == 503
    assert "needed: reconnecting (exited with code 1: ModuleNotFoundError" in body
    sidecar.stop(signal.SIGINT)
    assert sidecar.returncode == 0


def test_strict_startup_fails_when_a_critical_server_is_down(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        free_port(),
        stdio_server("needed", tmp_path / "n.pid", "--crash-at-start", critical=True)
        + stdio_server("fine", tmp_path / "f.pid"),
        sidecar_extra="  strict: true\n",
    )
    result = subprocess.run([*CLI, "run", "-c", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "critical servers failed at startup: needed: exited with code 1" in result.stderr
    fine_pid = int((tmp_path / "f.pid").read_text())
    assert not alive(fine_pid)


def test_status_says_when_no_sidecar_answers() -> None:
    result = subprocess.run(
        [*CLI, "status", "--url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot read" in result.stderr
    assert os.linesep not in result.stderr.strip()


def test_servers_die_with_a_sidecar_killed_outright(
    tmp_path: Path, sidecars: Callable[..., SidecarProcess]
) -> None:
    """SIGKILL runs no shutdown code; the kernel's parent-death signal still takes the child."""
    pidfile = tmp_path / "deaf.pid"
    # Hung at initialize: it never reads stdin, so it would not notice the pipe closing.
    config = write_config(tmp_path, free_port(), stdio_server("deaf", pidfile, "--hang-at-initialize"))
    sidecar = sidecars(config)
    pid = wait_for(lambda: pidfile.exists() and int(pidfile.read_text()), 30, "the server's pidfile")
    assert alive(pid)
    sidecar.stop(signal.SIGKILL)
    try:
        wait_for(lambda: not alive(pid), 5, f"server {pid} to die with the sidecar")
    finally:
        if alive(pid):  # the test's own orphan: do not leave it behind when the test fails
            os.kill(pid, signal.SIGKILL)


def test_a_taken_ops_port_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pidfile = tmp_path / "never.pid"
        config = write_config(tmp_path, port, stdio_server("ok", pidfile))
        result = subprocess.run([*CLI, "run", "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mcp-sidecar: cannot listen on 127.0.0.1:{port}: error while attempting to bind on address "
        f"('127.0.0.1', {port}): address already in use"
    ]
    assert not pidfile.exists()  # no server was spawned
