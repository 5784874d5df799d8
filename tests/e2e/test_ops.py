"""The ops HTTP server of a running `mcp-sidecar`: metrics across a failure, admin, reload, secrets."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from .harness import Sidecars, free_port, health, stdio_server, wait_for, write_config

FAMILIES = {
    "mcp_server_up",
    "mcp_server_state",
    "mcp_servers_active",
    "mcp_servers_failed",
    "mcp_servers_configured",
    "mcp_server_reconnect_attempts",
    "mcp_server_reconnect_failures",
    "mcp_server_disconnects",
    "mcp_server_connect_duration_seconds",
    "mcp_server_health_check_duration_seconds",
    "mcp_server_health_check_failures",
    "mcp_server_last_state_change_timestamp_seconds",
    "mcp_server_tools",
    "mcp_sidecar_build_info",
}


class Scrape:
    """One scrape of `/metrics`, parsed by prometheus-client's own parser."""

    def __init__(self, text: str, openmetrics: bool) -> None:
        families = list((parse_openmetrics if openmetrics else parse_text)(text))
        self.families = {family.name for family in families}
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in families
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))


def scrape(port: int, openmetrics: bool = False) -> Scrape | None:
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return Scrape(response.read().decode(), openmetrics)
    except OSError:
        return None


def post(port: int, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metrics_follow_a_kill_and_the_recovery(tmp_path: Path, sidecars: Sidecars) -> None:
    port = free_port()
    pid_file = tmp_path / "alpha.pid"
    config = write_config(
        tmp_path,
        port,
        stdio_server("alpha", pid_file, critical=True) + stdio_server("beta", tmp_path / "beta.pid"),
    )
    sidecar = sidecars(config)

    # The first scrape that answers already has every series of every configured server.
    first = wait_for(lambda: scrape(port), 15, "the first scrape")
    assert first.families >= FAMILIES
    for server in ("alpha", "beta"):
        assert first.value("mcp_server_reconnect_attempts_total", server=server) == 0
        assert first.value("mcp_server_disconnects_total", server=server, reason="exited") == 0
        states = [first.value("mcp_server_state", server=server, state=s) for s in ("connecting", "active")]
        assert sum(v or 0 for v in states) == 1
    assert first.value("mcp_servers_configured") == 2

    up = wait_for(
        lambda: (s := scrape(port)) and s.value("mcp_servers_active") == 2 and s, 30, "both servers up"
    )
    assert up.value("mcp_server_up", server="alpha", transport="stdio", criticality="critical") == 1
    assert up.value("mcp_server_connect_duration_seconds_count", server="alpha") == 1
    assert up.value("mcp_server_info", server="alpha", protocol_version="2026-07-28",
                 implementation="behaving", implementation_version="1.0.0") == 1  # fmt: skip

    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    down = wait_for(
        lambda: (
            (s := scrape(port))
            and s.value("mcp_server_up", server="alpha", transport="stdio", criticality="critical") == 0
            and s
        ),
        5,
        "alpha down on /metrics",
    )
    assert down.value("mcp_servers_failed") == 1
    assert down.value("mcp_server_disconnects_total", server="alpha", reason="exited") == 1
    assert down.value("mcp_server_up", server="beta", transport="stdio", criticality="optional") == 1

    recovered = wait_for(
        lambda: (
            (s := scrape(port))
            and s.value("mcp_server_up", server="alpha", transport="stdio", criticality="critical") == 1
            and s
        ),
        30,
        "alpha back on /metrics",
    )
    assert recovered.value("mcp_servers_failed") == 0
    assert recovered.value("mcp_server_reconnect_attempts_total", server="alpha") >= 1
    assert recovered.value("mcp_server_connect_duration_seconds_count", server="alpha") == 2
    assert recovered.value("mcp_server_state", server="alpha", state="active") == 1
    assert recovered.value("mcp_server_health_check_duration_seconds_count", server="beta") >= 1

    # Prometheus asks for OpenMetrics; that exposition parses too and says the same.
    openmetrics = scrape(port, openmetrics=True)
    assert openmetrics is not None
    assert openmetrics.value("mcp_server_reconnect_attempts_total", server="alpha") >= 1
    sidecar.stop()


def test_admin_needs_the_token_and_reload_applies_the_file(tmp_path: Path, sidecars: Sidecars) -> None:
    port = free_port()
    token = "admin-token-" + os.urandom(8).hex()
    servers = stdio_server("alpha", tmp_path / "alpha.pid")
    config = write_config(tmp_path, port, servers, "  admin_token_env: SIDECAR_TEST_TOKEN\n")
    sidecar = sidecars(config, env=os.environ | {"SIDECAR_TEST_TOKEN": token})
    wait_for(lambda: (doc := health(port)) and doc["active_count"] == 1, 30, "alpha active")

    for path in ("/servers/alpha/drop", "/servers/alpha/reconnect", "/-/reload"):
        assert post(port, path)[0] == 401
        assert post(port, path, "wrong-" + token)[0] == 401
        assert post(port, path, token[:-1])[0] == 401  # a prefix is not the token
    assert health(port)["active_count"] == 1  # nothing happened

    status, body = post(port, "/servers/alpha/tools/add", token, {"a": 2, "b": 40})
    assert status == 200 and json.loads(body)["structuredContent"] == {"result": 42}
    assert post(port, "/servers/alpha/tools/add", None, {"a": 2, "b": 40})[0] == 401
    status, body = post(port, "/servers/alpha/tools/no_such_tool", token)
    assert status in (200, 502)  # an error either way: a JSON-RPC error, or a result flagged as one
    answer = json.loads(body)
    assert ("error" in answer) if status == 502 else answer["isError"] is True
    calls = scrape(port)
    assert calls.value("mcp_tool_calls_total", server="alpha", tool="add") == 1
    assert calls.value("mcp_tool_call_duration_seconds_count", server="alpha", tool="add") == 1
    assert calls.value("mcp_tool_calls_total", server="alpha", tool="no_such_tool") == 1
    assert sum(v for (name, labels), v in calls.samples.items() if name == "mcp_tool_call_errors_total") == 1

    status, body = post(port, "/servers/alpha/drop", token)
    assert status == 200 and json.loads(body)["state"] == "dropped"
    status, body = post(port, "/servers/alpha/reconnect", token)
    assert status == 200 and json.loads(body)["state"] == "active"
    assert post(port, "/servers/nosuch/reconnect", token)[0] == 404

    # Reload: a broken file changes nothing; a good one adds and removes servers.
    good = config.read_text()
    config.write_text(good + "  - {name: broken, transport: stdio}\n")
    status, body = post(port, "/-/reload", token)
    assert status == 400 and "servers[1] (broken)" in body
    assert [s["name"] for s in health(port)["servers"]] == ["alpha"]
    config.write_text(good.replace("name: alpha", "name: gamma").replace("alpha.pid", "gamma.pid"))
    status, body = post(port, "/-/reload", token)
    assert status == 200 and json.loads(body) == {"added": ["gamma"], "removed": ["alpha"], "restarted": []}
    wait_for(
        lambda: (
            (doc := health(port))
            and [(s["name"], s["state"]) for s in doc["servers"]] == [("gamma", "active")]
        ),
        30,
        "gamma active and alpha gone",
    )
    metrics = scrape(port)
    assert metrics.value("mcp_server_tools", server="gamma") == 4
    assert metrics.value("mcp_server_tools", server="alpha") is None  # its series left with it
    logs = sidecar.stop()
    assert token not in logs


def test_admin_is_disabled_without_a_token(tmp_path: Path, sidecars: Sidecars) -> None:
    port = free_port()
    config = write_config(tmp_path, port, stdio_server("alpha", tmp_path / "alpha.pid"))
    sidecar = sidecars(config)
    wait_for(lambda: health(port), 15, "the ops server")
    status, body = post(port, "/servers/alpha/reconnect", "anything")
    assert status == 403 and "disabled" in body
    sidecar.stop()


def test_a_canary_secret_appears_in_no_output(tmp_path: Path, sidecars: Sidecars) -> None:
    canary = "canary-" + os.urandom(8).hex()
    port, dead_port = free_port(), free_port()
    servers = (
        # A server that dies saying its key: the exit reason quotes stderr, which must be masked.
        "  - {name: env-holder, transport: stdio, command: sh, "
        """args: [-c, 'echo "bad key $API_KEY" >&2; exit 3'], env: {API_KEY: "${CANARY}"}}\n"""
        f"  - {{name: header-holder, transport: streamable-http, url: 'http://127.0.0.1:{dead_port}/mcp', "
        'headers: {Authorization: "Bearer ${CANARY}"}, connect_timeout: 1s}\n'
    )
    config = write_config(tmp_path, port, servers)
    sidecar = sidecars(config, env=os.environ | {"CANARY": canary}, log_format="json")
    wait_for(
        lambda: (
            (doc := health(port))
            and len(doc["servers"]) == 2
            and all(s["reconnect_attempts"] >= 1 for s in doc["servers"])
        ),
        30,
        "both servers failing and retrying",
    )
    outputs = []
    for path in ("/metrics", "/health/mcp", "/", "/readyz"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                outputs.append(response.read().decode())
        except urllib.error.HTTPError as error:  # /readyz answers 503 here, with reasons
            outputs.append(error.read().decode())
    deadline = time.monotonic() + 5
    logs = sidecar.stop()
    assert time.monotonic() < deadline
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert {line["event"] for line in lines} >= {"connecting", "connect_failed", "reconnect_attempt"}
    for output in [*outputs, logs]:
        assert canary not in output
    # The secret was substituted and its holder's words do reach the outputs, masked.
    assert "bad key ***" in outputs[1] and "bad key ***" in logs
