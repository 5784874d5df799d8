"""Reloads of a running `mcp-sidecar` that overlap (three POST /-/reload and a SIGHUP at once)."""

from __future__ import annotations

import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support import live_children

from .harness import Sidecars, alive, free_port, health, stdio_server, wait_for, write_config
from .test_ops import post

NO_CHANGE = {"added": [], "removed": [], "restarted": []}


def _states(port: int) -> dict[str, tuple[str, int]]:
    document = health(port) or {"servers": []}
    return {s["name"]: (s["state"], len(s["tools"])) for s in document["servers"]}


def test_overlapping_reloads_leave_one_process_per_server(tmp_path: Path, sidecars: Sidecars) -> None:
    port = free_port()
    token = "admin-token-" + os.urandom(8).hex()
    alpha_pid, beta_pid = tmp_path / "alpha.pid", tmp_path / "beta.pid"
    extra = "  admin_token_env: SIDECAR_TEST_TOKEN\n"
    config = write_config(
        tmp_path, port, stdio_server("alpha", alpha_pid) + stdio_server("beta", beta_pid), extra
    )
    sidecar = sidecars(config, env=os.environ | {"SIDECAR_TEST_TOKEN": token})
    wait_for(lambda: _states(port) == {"alpha": ("active", 4), "beta": ("active", 4)}, 30, "both active")
    sidecar_pid = sidecar.process.pid
    old = {"alpha": int(alpha_pid.read_text()), "beta": int(beta_pid.read_text())}
    assert live_children(sidecar_pid) == sorted(old.values())

    # alpha's config changes (one more tool); three reloads over HTTP and a SIGHUP, at once.
    changed = stdio_server("alpha", alpha_pid, "--extra-tools", "1") + stdio_server("beta", beta_pid)
    write_config(tmp_path, port, changed, extra)
    start = threading.Barrier(4)

    def reload_over_http() -> tuple[int, str]:
        start.wait(5)
        return post(port, "/-/reload", token)

    def hang_up() -> None:
        start.wait(5)
        os.kill(sidecar_pid, signal.SIGHUP)

    with ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(reload_over_http) for _ in range(3)]
        pool.submit(hang_up).result(10)
        answers = [answer.result(30) for answer in answers]
    assert [status for status, _ in answers] == [200, 200, 200], answers
    hangup_line = wait_for(
        lambda: next((line for line in sidecar.logs().splitlines() if "reloaded: " in line), None),
        15,
        "the SIGHUP reload's log line",
    )
    # Serialised: the first to run restarted alpha; the three behind it found nothing to do.
    reports = [json.loads(body) for _, body in answers]
    reports.append(json.loads(hangup_line.split("reloaded: ", 1)[1]))
    assert sorted(reports, key=lambda r: r["restarted"]) == [NO_CHANGE] * 3 + [
        {"added": [], "removed": [], "restarted": ["alpha"]}
    ], reports

    wait_for(lambda: _states(port) == {"alpha": ("active", 5), "beta": ("active", 4)}, 30, "new alpha active")
    new_alpha = int(alpha_pid.read_text())
    assert new_alpha != old["alpha"]
    wait_for(
        lambda: live_children(sidecar_pid) == sorted([new_alpha, old["beta"]]),
        10,
        "exactly one process per configured server",
    )
    assert not alive(old["alpha"])

    # drop and reconnect reach the one alpha there is.
    status, body = post(port, "/servers/alpha/drop", token)
    assert status == 200 and json.loads(body)["state"] == "dropped"
    wait_for(lambda: live_children(sidecar_pid) == [old["beta"]], 10, "only beta left after the drop")
    status, body = post(port, "/servers/alpha/reconnect", token)
    assert status == 200 and json.loads(body)["state"] == "active"
    assert len(live_children(sidecar_pid)) == 2

    sidecar.stop()
    assert sidecar.returncode == 0
    for pid in (int(alpha_pid.read_text()), old["beta"]):
        wait_for(lambda pid=pid: not alive(pid), 5, f"server {pid} gone with the sidecar")
