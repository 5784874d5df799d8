"""Fixtures for the operator's kit tests: the shipped files, external tools, the metric contract.

External binaries (promtool, prometheus, alertmanager, amtool: Debian packages `prometheus`
and `prometheus-alertmanager`) skip a test locally when missing and fail it when `CI=true`,
like `require` in tests/conftest.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from externals import require

REPO = Path(__file__).resolve().parents[2]

# The "Prometheus metrics" contract table (README / DESIGN): name -> labels. Histograms also
# expose _bucket, _sum and _count series.
CONTRACT_METRICS: dict[str, frozenset[str]] = {
    "mcp_server_up": frozenset({"server", "transport", "criticality"}),
    "mcp_server_state": frozenset({"server", "state"}),
    "mcp_servers_active": frozenset(),
    "mcp_servers_failed": frozenset(),
    "mcp_servers_configured": frozenset(),
    "mcp_server_reconnect_attempts_total": frozenset({"server"}),
    "mcp_server_reconnect_failures_total": frozenset({"server"}),
    "mcp_server_disconnects_total": frozenset({"server", "reason"}),
    "mcp_server_connect_duration_seconds": frozenset({"server"}),
    "mcp_server_health_check_duration_seconds": frozenset({"server"}),
    "mcp_server_health_check_failures_total": frozenset({"server"}),
    "mcp_server_last_state_change_timestamp_seconds": frozenset({"server"}),
    "mcp_server_tools": frozenset({"server"}),
    "mcp_server_info": frozenset({"server", "protocol_version", "implementation", "implementation_version"}),
    "mcp_tool_calls_total": frozenset({"server", "tool"}),
    "mcp_tool_call_errors_total": frozenset({"server", "tool", "error_type"}),
    "mcp_tool_call_duration_seconds": frozenset({"server", "tool"}),
    "mcp_sidecar_build_info": frozenset({"version", "mcp_version"}),
}
HISTOGRAMS = frozenset(
    {
        "mcp_server_connect_duration_seconds",
        "mcp_server_health_check_duration_seconds",
        "mcp_tool_call_duration_seconds",
    }
)
PROMETHEUS_BUILTINS = frozenset({"up"})  # series Prometheus itself writes for every target

# Everything PromQL spells with a name that is not a metric.
_LABEL_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_STRINGS = re.compile(r'"[^"]*"')
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NOT_METRICS = frozenset(
    {
        "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "changes", "absent",
        "histogram_quantile", "time", "vector", "label_replace", "and", "or", "unless", "le",
        "bool", "offset", "humanize", "clamp_min", "clamp_max",
    }
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label clauses, matchers and strings removed)."""
    text = _STRINGS.sub("", _MATCHERS.sub("", _LABEL_CLAUSE.sub("", expr)))
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors: [5m], [$__rate_interval]
    return {name for name in _IDENT.findall(text) if name not in _NOT_METRICS and not name.isdigit()}


def known_series(name: str) -> bool:
    """True for a contract metric (or one of a histogram's series) or a Prometheus built-in."""
    if name in CONTRACT_METRICS or name in PROMETHEUS_BUILTINS:
        return True
    base, _, suffix = name.rpartition("_")
    return suffix in {"bucket", "sum", "count"} and base in HISTOGRAMS


def _binary(*names: str, package: str) -> str:
    found = next((path for name in names if (path := shutil.which(name))), None)
    require(found is not None, f"{names[0]} (apt-get install {package})")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def need() -> Callable[[bool, str], None]:
    """`need(condition, what)`: skip locally, fail in CI, when an external is missing."""
    return require


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool", package="prometheus")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary("prometheus", package="prometheus")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    return _binary("alertmanager", "prometheus-alertmanager", package="prometheus-alertmanager")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _binary("amtool", package="prometheus-alertmanager")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def load_yaml() -> Callable[[Path], Any]:
    return lambda path: yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((REPO / "alerts" / "mcp-sidecar.rules.yml").read_text())[
        "groups"
    ]
    return groups


@pytest.fixture(scope="session")
def alert_rules(rule_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in rule_groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((REPO / "dashboards" / "mcp-sidecar.json").read_text())
    return data


@pytest.fixture(scope="session")
def contract() -> Mapping[str, frozenset[str]]:
    return CONTRACT_METRICS


@pytest.fixture(scope="session")
def promql_metrics() -> Callable[[str], set[str]]:
    return metric_names


@pytest.fixture(scope="session")
def is_known_series() -> Callable[[str], bool]:
    return known_series


@pytest.fixture(scope="session")
def sidecar_check() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`sidecar_check(path, env={})`: run `mcp-sidecar check -c path` as a user would."""

    def run(path: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sidecar", "check", "-c", str(path)],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
