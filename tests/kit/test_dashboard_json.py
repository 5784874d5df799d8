"""The Grafana dashboard: generated from code, stable, filtered by its variables, contract names only."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from externals import require

UID = "mcp-sidecar"
SCHEMA_VERSION = 42  # Grafana 12's dashboard JSON; grafana-foundation-sdk 0.0.21 writes it
REQUIRED_PANELS = {
    "Active servers",
    "Failed servers",
    "Configured servers",
    "Critical servers down",
    "Server state",
    "Reconnects",
    "Disconnects by reason",
    "Connect latency",
    "Probe latency",
    "Tool call rate",
    "Tool call errors",
    "Tool call latency",
    "Dropped servers",
    "Internal errors",
    "Upstream latency by method",
    "Upstream errors by method",
    "Upstream session duration",
    "Gateway clients",
    "Tools exposed",
    "List changes sent",
    "Gateway latency by method",
    "Gateway errors by method",
    "Gateway session duration",
    "Build",
}
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|changes|delta|deriv|\w+_over_time)\((?P<arg>[^()]*)\)")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows are only headings), including panels inside collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in panels(dashboard):
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def test_committed_json_is_what_the_generator_writes(repo: Path) -> None:
    found = importlib.util.find_spec("grafana_foundation_sdk") is not None
    require(found, "grafana-foundation-sdk==0.0.21 (a test dependency)")
    result = subprocess.run(
        [sys.executable, "dashboards/generate.py", "--stdout"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    committed = (repo / "dashboards" / "mcp-sidecar.json").read_text()
    assert result.stdout == committed, (
        "dashboards/mcp-sidecar.json is stale: run python dashboards/generate.py"
    )


def test_identity_and_schema(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == UID
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard["title"] == "MCP sidecar"
    assert "id" not in dashboard or dashboard["id"] is None  # an id would clash between Grafana instances


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "server"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "server"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variable["definition"].startswith("label_values(") and variable["definition"].endswith(
            f", {name})"
        )
    for name in ("instance", "server"):  # several sidecars and servers at once
        assert variables[name]["includeAll"] and variables[name]["multi"]
        assert variables[name]["allValue"] == ".*"


def test_required_panels_exist(dashboard: dict[str, Any]) -> None:
    titles = [panel["title"] for panel in panels(dashboard)]
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    assert set(titles) >= REQUIRED_PANELS
    kinds = {panel["title"]: panel["type"] for panel in panels(dashboard)}
    assert kinds["Server state"] == "state-timeline"


def test_every_panel_has_a_unit_and_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        assert panel["fieldConfig"]["defaults"].get("unit"), f"panel {panel['title']!r} has no unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_every_rate_uses_rate_interval(dashboard: dict[str, Any]) -> None:
    seen = 0
    for title, expr in expressions(dashboard):
        for match in RANGE_FUNCTIONS.finditer(expr):
            seen += 1
            assert match["arg"].endswith("[$__rate_interval]"), f"{title}: {match[0]}"
    assert seen >= 8  # reconnects, disconnects, probe failures, three histograms, tool calls and errors


def test_every_selector_is_filtered_by_job_and_instance(dashboard: dict[str, Any]) -> None:
    for title, expr in expressions(dashboard):
        selectors = re.findall(r"\b(\w+)\{([^}]*)\}", expr)
        assert selectors, f"{title}: {expr}"
        for metric, matchers in selectors:
            assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, f"{title}: {metric}"


def test_per_server_panels_follow_the_server_variable(
    dashboard: dict[str, Any], contract: dict[str, frozenset[str]]
) -> None:
    for title, expr in expressions(dashboard):
        for metric, matchers in re.findall(r"\b(\w+)\{([^}]*)\}", expr):
            base = re.sub(r"_bucket$", "", metric)
            if "server" in contract.get(base, frozenset()) and title != "Critical servers down":
                assert 'server=~"$server"' in matchers, f"{title}: {metric}"
            if "mcp_sidecar_server" in contract.get(re.sub(r"_(bucket|count|sum)$", "", metric), frozenset()):
                assert 'mcp_sidecar_server=~"$server"' in matchers, f"{title}: {metric}"


def test_only_contract_metrics(
    dashboard: dict[str, Any],
    promql_metrics: Callable[[str], set[str]],
    is_known_series: Callable[[str], bool],
    contract: dict[str, frozenset[str]],
) -> None:
    used: set[str] = set()
    for title, expr in expressions(dashboard):
        names = promql_metrics(expr)
        assert names, f"{title}: no metric in {expr}"
        unknown = {name for name in names if not is_known_series(name)}
        assert not unknown, f"{title}: not in the metrics contract: {unknown}"
        used |= {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
    for variable in dashboard["templating"]["list"][1:]:
        used |= promql_metrics(variable["definition"].removeprefix("label_values(").rsplit(",", 1)[0])
    # Everything the contract offers an operator is on the dashboard, except the per-server
    # implementation details that /health/mcp shows better.
    assert set(contract) - used == {"mcp_server_info"}


@pytest.mark.parametrize("metric", ["mcp_server_up_typo", "mcp_tool_call_duration_seconds_sum_x"])
def test_the_name_check_rejects_unknown_names(
    metric: str, promql_metrics: Callable[[str], set[str]], is_known_series: Callable[[str], bool]
) -> None:
    names = promql_metrics(f'sum by (server) (rate({metric}{{job=~"$job"}}[$__rate_interval]))')
    assert names == {metric} and not is_known_series(metric)
