"""The kit against a real Prometheus and Alertmanager: alerts fire, reach a webhook, resolve;
every dashboard query returns data.

Each test starts its own Prometheus and Alertmanager (Debian packages) on free 127.0.0.1 ports
with 1 s scrape and evaluation intervals, loading alerts/mcp-sidecar.rules.yml with only the
`for:` durations shortened; a webhook receiver (aiohttp, in the test); and `mcp-sidecar run`
with one critical and one optional stdio server (tests/servers/behaving.py). A server is held
down by a gate file: while it exists, the server's command exits 1 instead of starting, so the
sidecar's reconnects fail until the test removes it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import anyio
import pytest
import yaml
from aiohttp import web
from mcp import Client
from mcp.shared.exceptions import MCPError
from support import BEHAVING, LOCALHOST, alive, free_port

if TYPE_CHECKING:
    from conftest import LeakGuard, Service

pytestmark = pytest.mark.anyio

SCRAPE_SECONDS = 1
FOR = "2s"  # every rule's `for:` in this harness (the shipped ones are minutes)
FOR_SECONDS = 2
FIRING_BOUND = FOR_SECONDS + 3 * SCRAPE_SECONDS  # SIGKILL -> firing, at most (the "must show")
RATE_INTERVAL = "1m"  # what Grafana would put for $__rate_interval; covers the whole test
MIN_DASHBOARD_PANELS = 24  # the panels tests/kit/test_dashboard_json.py requires
ADMIN_TOKEN = "live-test-admin-token"  # tools are called through the sidecar's admin endpoint

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` s."""
    with anyio.move_on_after(timeout):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def found(get: Callable[[], T | None]) -> Callable[[], Awaitable[T | None]]:
    """`get` (a plain function) as an `eventually` check."""

    async def check() -> T | None:
        return get()

    return check


async def empty(results: Awaitable[list[Any]]) -> bool:
    return not await results


# -- the webhook receiver -------------------------------------------------------------------------


@dataclass
class Webhook:
    """Alertmanager's webhook notifications, as received: one entry per alert."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def receive(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.alerts.extend(payload["alerts"])
        return web.Response(text="ok")

    def find(self, status: str, since: float, **labels: str) -> dict[str, Any] | None:
        """The first notification of `status` for an alert that started firing after `since` (unix time)."""
        for alert in self.alerts:
            started = datetime.fromisoformat(alert["startsAt"]).timestamp()
            if (
                alert["status"] == status
                and started >= since
                and all(alert["labels"].get(k) == v for k, v in labels.items())
            ):
                return alert
        return None


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    receiver = Webhook()
    app = web.Application()
    app.router.add_post("/alerts", receiver.receive)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, LOCALHOST, 0)
    await site.start()
    receiver.url = f"http://{LOCALHOST}:{runner.addresses[0][1]}/alerts"
    try:
        yield receiver
    finally:
        with anyio.fail_after(10):
            await runner.cleanup()


# -- the processes --------------------------------------------------------------------------------


@dataclass
class Stack:
    prometheus: str  # base URL
    sidecar_target: str  # host:port Prometheus scrapes
    http: aiohttp.ClientSession
    servers: dict[str, tuple[Path, Path]]  # name -> (pidfile, gate)

    async def query(self, promql: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.prometheus}/api/v1/query", params={"query": promql}) as response:
            body = await response.json()
        assert body["status"] == "success", f"{promql}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def series(self, match: str) -> list[dict[str, str]]:
        async with self.http.get(f"{self.prometheus}/api/v1/series", params={"match[]": match}) as response:
            body = await response.json()
        assert body["status"] == "success", f"{match}: {body}"
        found: list[dict[str, str]] = body["data"]
        return found

    async def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> int:
        url = f"http://{self.sidecar_target}/servers/{server}/tools/{tool}"
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.http.post(url, json=arguments, headers=headers) as response:
            return response.status

    def pid(self, server: str) -> int:
        return int(self.servers[server][0].read_text())

    def hold_down(self, server: str) -> None:
        self.servers[server][1].touch()

    def release(self, server: str) -> None:
        self.servers[server][1].unlink()

    async def wait_up(self, server: str, timeout: float = 20) -> None:
        query = f'mcp_server_up{{job="mcp-sidecar", server="{server}"}} == 1'
        await eventually(lambda: self.query(query), timeout, f"{server} up in Prometheus")

    async def settle(self) -> None:
        """Both servers up and no alert at all: what the sidecar's own start-up raised is over."""
        await self.wait_up("crit")
        await self.wait_up("opt")
        await eventually(lambda: empty(self.alerts()), 20, "no alerts left from the start-up")

    async def alerts(self, **labels: str) -> list[dict[str, str]]:
        selector = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        return [r["metric"] for r in await self.query(f"ALERTS{{{selector}}}")]


def harness_rules(repo: Path, target: Path) -> None:
    """The shipped rules with every `for:` shortened to FOR, and nothing else changed."""
    text = (repo / "alerts" / "mcp-sidecar.rules.yml").read_text()
    shortened, count = re.subn(r"^(\s+)for: \S+$", rf"\g<1>for: {FOR}", text, flags=re.MULTILINE)
    alerts = sum(1 for group in yaml.safe_load(text)["groups"] for rule in group["rules"])
    assert count == alerts, "every rule should have a `for:` line"
    target.write_text(shortened)


def alertmanager_settings(webhook_url: str) -> dict[str, Any]:
    """Every alert to the test's webhook at once, and its resolution too."""
    route = {"receiver": "test", "group_by": ["alertname", "server"], "group_wait": "0s",
             "group_interval": "1s", "repeat_interval": "1h"}  # fmt: skip
    hook = {"url": webhook_url, "send_resolved": True}
    return {"route": route, "receivers": [{"name": "test", "webhook_configs": [hook]}]}


def prometheus_settings(rules: Path, alertmanager: str, sidecar: str) -> dict[str, Any]:
    interval = f"{SCRAPE_SECONDS}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "mcp-sidecar", "static_configs": [{"targets": [sidecar]}]}],
    }


def stdio_server(name: str, criticality: str, pidfile: Path, gate: Path) -> dict[str, Any]:
    script = (
        f"test -e {shlex.quote(str(gate))} && {{ echo held down by the test >&2; exit 1; }}; "
        f"exec {shlex.quote(sys.executable)} {shlex.quote(str(BEHAVING))} "
        f"--pidfile {shlex.quote(str(pidfile))} --name {name}"
    )
    return {"name": name, "transport": "stdio", "command": "/bin/sh", "args": ["-c", script],
            "criticality": criticality}  # fmt: skip


@pytest.fixture
def sidecar_config(tmp_path: Path) -> tuple[Path, int, dict[str, tuple[Path, Path]]]:
    port = free_port()
    servers = {name: (tmp_path / f"{name}.pid", tmp_path / f"{name}.down") for name in ("crit", "opt")}
    config = {
        "sidecar": {
            "listen": f"{LOCALHOST}:{port}",
            "gateway": {"listen": f"{LOCALHOST}:{free_port()}"},
            "admin_token_env": "MCP_SIDECAR_TOKEN",
        },
        "defaults": {
            "connect_timeout": "10s",
            "health": {"interval": "500ms", "timeout": "1s", "failure_threshold": 2},
            "reconnect": {"initial_backoff": "200ms", "max_backoff": "500ms", "multiplier": 2},
        },
        "servers": [
            stdio_server("crit", "critical", *servers["crit"]),
            stdio_server("opt", "optional", *servers["opt"]),
        ],
    }
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, port, servers


@pytest.fixture
def sidecar(
    repo: Path, tmp_path: Path, leak_guard: LeakGuard, sidecar_config: tuple[Path, int, Any]
) -> Iterator[subprocess.Popen[bytes]]:
    """`mcp-sidecar run` as a user runs it; SIGTERM at the end, and none of its servers left."""
    path, _, servers = sidecar_config
    with (tmp_path / "sidecar.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "run", "-c", str(path)],
            cwd=repo,
            env=os.environ | {"MCP_SIDECAR_TOKEN": ADMIN_TOKEN},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        pids = [int(pidfile.read_text()) for pidfile, _ in servers.values() if pidfile.exists()]
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [pid for pid in pids if alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"MCP servers outlived the sidecar: {left}"


@pytest.fixture
async def stack(
    repo: Path,
    tmp_path: Path,
    prometheus_bin: str,
    alertmanager_bin: str,
    services: Callable[..., Service],
    webhook: Webhook,
    sidecar: subprocess.Popen[bytes],
    sidecar_config: tuple[Path, int, dict[str, tuple[Path, Path]]],
) -> AsyncIterator[Stack]:
    _, sidecar_port, servers = sidecar_config
    alertmanager = services([alertmanager_bin], path="")
    alertmanager_config = tmp_path / "alertmanager.yml"
    alertmanager_config.write_text(yaml.safe_dump(alertmanager_settings(webhook.url)))
    alertmanager.argv += [
        f"--config.file={alertmanager_config}",
        f"--storage.path={tmp_path / 'alertmanager'}",
        f"--web.listen-address={LOCALHOST}:{alertmanager.port}",
        "--cluster.listen-address=",  # no gossip port (it would bind every interface)
    ]
    rules = tmp_path / "rules.yml"
    harness_rules(repo, rules)
    prometheus = services([prometheus_bin], path="")
    prometheus_config = tmp_path / "prometheus.yml"
    settings = prometheus_settings(rules, f"{LOCALHOST}:{alertmanager.port}", f"{LOCALHOST}:{sidecar_port}")
    prometheus_config.write_text(yaml.safe_dump(settings))
    prometheus.argv += [
        f"--config.file={prometheus_config}",
        f"--storage.tsdb.path={tmp_path / 'prometheus'}",
        f"--web.listen-address={LOCALHOST}:{prometheus.port}",
    ]
    alertmanager.spawn()
    prometheus.spawn()
    await alertmanager.wait_ready()
    await prometheus.wait_ready()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for service in (prometheus, alertmanager):

            async def ready(base: str = f"http://{LOCALHOST}:{service.port}") -> bool:
                try:
                    async with http.get(f"{base}/-/ready") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, 20, f"{service.argv[0]} ready")
        yield Stack(f"http://{LOCALHOST}:{prometheus.port}", f"{LOCALHOST}:{sidecar_port}", http, servers)
    assert sidecar.poll() is None, "the sidecar died during the test"


# -- the tests -----------------------------------------------------------------------------------


async def test_a_killed_critical_server_pages_through_alertmanager_and_resolves(
    stack: Stack, webhook: Webhook
) -> None:
    await stack.settle()
    stack.hold_down("crit")
    os.kill(stack.pid("crit"), signal.SIGKILL)
    killed, killed_at = time.monotonic(), time.time()

    firing = await eventually(
        lambda: stack.alerts(alertname="MCPCriticalServerDown", alertstate="firing", server="crit"),
        FIRING_BOUND + 10,
        "MCPCriticalServerDown firing",
    )
    elapsed = time.monotonic() - killed
    print(
        f"\nSIGKILL -> MCPCriticalServerDown firing in Prometheus: {elapsed:.2f}s "
        f"(bound: for {FOR} + 3 x {SCRAPE_SECONDS}s scrape = {FIRING_BOUND}s)"
    )
    assert elapsed <= FIRING_BOUND
    assert firing[0]["severity"] == "critical" and firing[0]["job"] == "mcp-sidecar"

    delivered = await eventually(
        found(lambda: webhook.find("firing", killed_at, alertname="MCPCriticalServerDown", server="crit")),
        10,
        "the page at the webhook",
    )
    print(f"SIGKILL -> notification at the webhook: {time.monotonic() - killed:.2f}s")
    assert delivered["labels"]["severity"] == "critical"
    assert delivered["annotations"]["runbook_url"].endswith("#mcpcriticalserverdown")
    assert "crit" in delivered["annotations"]["summary"]

    stack.release("crit")
    await stack.wait_up("crit")
    await eventually(
        lambda: empty(stack.alerts(alertname="MCPCriticalServerDown", server="crit")),
        10,
        "MCPCriticalServerDown resolved in Prometheus",
    )
    await eventually(
        found(lambda: webhook.find("resolved", killed_at, alertname="MCPCriticalServerDown", server="crit")),
        10,
        "the resolution at the webhook",
    )


async def test_an_optional_server_down_warns_and_never_pages(stack: Stack, webhook: Webhook) -> None:
    await stack.settle()
    stack.hold_down("opt")
    os.kill(stack.pid("opt"), signal.SIGKILL)
    killed, killed_at = time.monotonic(), time.time()
    critical: list[dict[str, str]] = []

    async def warning_firing() -> list[dict[str, str]]:
        critical.extend(await stack.alerts(severity="critical"))  # pending or firing, any alert
        return await stack.alerts(alertname="MCPOptionalServerDown", alertstate="firing", server="opt")

    firing = await eventually(warning_firing, FIRING_BOUND + 10, "MCPOptionalServerDown firing")
    print(f"\nSIGKILL -> MCPOptionalServerDown firing: {time.monotonic() - killed:.2f}s")
    assert firing[0]["severity"] == "warning"
    await eventually(
        found(lambda: webhook.find("firing", killed_at, alertname="MCPOptionalServerDown", server="opt")),
        10,
        "the warning at the webhook",
    )
    # A window as long again, for anything critical that would come later.
    with anyio.move_on_after(FOR_SECONDS + 3 * SCRAPE_SECONDS):
        while True:
            critical.extend(await stack.alerts(severity="critical"))
            await anyio.sleep(0.2)
    assert critical == [], f"critical alerts while only an optional server was down: {critical}"
    assert not await stack.alerts(server="opt", severity="critical")  # still down, still no page
    assert not webhook.find("firing", killed_at, severity="critical")


def dashboard_queries(dashboard: dict[str, Any], instance: str) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, the dashboard's variables substituted."""
    values = {"$job": "mcp-sidecar", "$instance": instance, "$server": ".*",
              "$__rate_interval": RATE_INTERVAL}  # fmt: skip
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                expr = target["expr"]
                for name, value in values.items():
                    expr = expr.replace(name, value)
                assert "$" not in expr, expr
                yield inner["title"], expr


async def gateway_round(url: str) -> None:
    """One gateway client's session: a call that works, one the tool fails, one to no such tool."""
    async with Client(url, mode="legacy") as client:
        assert not (await client.call_tool("crit__add", {"a": 1, "b": 2})).is_error
        assert (await client.call_tool("crit__add", {"a": "one", "b": 2})).is_error
        with pytest.raises(MCPError):
            await client.call_tool("crit__no_such_tool", {})


async def test_every_dashboard_query_returns_data(
    stack: Stack, dashboard: dict[str, Any], sidecar_config: tuple[Path, int, Any]
) -> None:
    await stack.settle()
    gateway = f"http://{yaml.safe_load(sidecar_config[0].read_text())['sidecar']['gateway']['listen']}/mcp"
    async with Client(gateway, mode="legacy"):  # a gateway client, told of every change below
        await _traffic(stack, gateway)
    await _every_query_returns_data(stack, dashboard)


async def _traffic(stack: Stack, gateway: str) -> None:
    # One real loss and reconnect, so reconnect and disconnect panels show something.
    os.kill(stack.pid("opt"), signal.SIGKILL)
    await eventually(
        lambda: stack.query('sum(mcp_server_disconnects_total{job="mcp-sidecar", server="opt"}) > 0'),
        20,
        "the disconnect counted",
    )
    await stack.wait_up("opt")
    # A second loss once the first lost session is scraped, so that the session histogram's rate
    # is above zero (a rate needs the count to rise between two scrapes).
    sessions = 'mcp_client_session_duration_seconds_count{job="mcp-sidecar", mcp_sidecar_server="opt"}'
    await eventually(lambda: stack.query(sessions), 20, "the lost session scraped")
    os.kill(stack.pid("opt"), signal.SIGKILL)
    await eventually(lambda: stack.query(f"sum({sessions}) > 1"), 20, "the second lost session scraped")
    await stack.wait_up("opt")
    # Tool calls through the sidecar, one of them failing, for the tool-call panels: a round
    # before the series' first scrape and one after, so that their rates are above zero.
    # Gateway sessions, calls and failures likewise, for the gateway's panels.
    calls = (("add", {"a": 1, "b": 2}), ("echo", {"text": "hi"}), ("no_such_tool", {}))
    for tool, arguments in calls:
        await stack.call_tool("crit", tool, arguments)
    await gateway_round(gateway)
    for scraped in ("mcp_tool_call_errors_total", "mcp_server_session_duration_seconds_count"):
        await eventually(lambda s=scraped: stack.query(s), 10, f"{scraped} scraped")
    for tool, arguments in calls:
        await stack.call_tool("crit", tool, arguments)
    await gateway_round(gateway)
    for counter in (
        "mcp_tool_calls_total",
        "mcp_tool_call_errors_total",
        "mcp_server_session_duration_seconds_count",
        "mcp_server_operation_duration_seconds_count",
        "mcp_gateway_list_changed_sent_total",
    ):
        await eventually(lambda c=counter: stack.query(f"rate({c}[1m]) > 0"), 10, f"{counter} rising")
    await eventually(
        lambda: stack.query('count_over_time(up{job="mcp-sidecar"}[1m]) >= 5'), 20, "five scrapes"
    )


async def _every_query_returns_data(stack: Stack, dashboard: dict[str, Any]) -> None:
    # Every panel has a target (tests/kit/test_dashboard_json.py): at least one query each.
    panels_with_targets = sum(
        1
        for panel in dashboard["panels"]
        for inner in [panel, *panel.get("panels", [])]
        if inner.get("targets")
    )
    assert panels_with_targets >= MIN_DASHBOARD_PANELS
    blank: dict[str, str] = {}
    queried = 0
    for title, expr in dashboard_queries(dashboard, stack.sidecar_target):
        queried += 1
        result = await stack.query(expr)
        finite = [r for r in result if math.isfinite(float(r["value"][1]))]
        if not finite:
            blank[title] = expr
    assert queried >= panels_with_targets
    assert blank == {}

    for variable in dashboard["templating"]["list"][1:]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector = match[1].replace("$job", "mcp-sidecar").replace("$instance", stack.sidecar_target)
        series = await stack.series(selector)
        assert any(match[2] in labels for labels in series), f"{variable['name']}: {json.dumps(series)}"
