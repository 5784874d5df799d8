"""Fixtures for the operator's kit tests: the shipped files, external tools, the metric contract.

External binaries (promtool, prometheus, alertmanager, amtool: Debian packages `prometheus`
and `prometheus-alertmanager`) skip a test locally when missing and fail it when `CI=true`,
like `require` in tests/externals.py.
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
from prometheus_client.parser import text_string_to_metric_families
from support import REPO

from sidecar.app import GatewayCollector
from sidecar.events import Lost, ToolCalled
from sidecar.state import ServerState, ServerStatus
from sidecar.telemetry import metrics as _metrics

# The metrics contract, from the exporter itself: every module-level `_Family` of
# sidecar/telemetry/metrics.py by name and kind (counters are named with their `_total`).
# Histograms also expose _bucket, _sum and _count series.
FAMILIES: dict[str, str] = {
    value.name: value.kind for value in vars(_metrics).values() if isinstance(value, _metrics._Family)
}
HISTOGRAMS = frozenset(name for name, kind in FAMILIES.items() if kind == "histogram")


def _exported_labels() -> dict[str, frozenset[str]]:
    """name -> labels of every `mcp_*` family the exporter writes for one server that has
    answered its handshake, had one failed tool call and lost its connection once, and for a
    gateway that answered one call and ended one session. This also finds
    `mcp_sidecar_build_info`, the one contract series prometheus-client renders (not a `_Family`)."""
    kind = {"transport": "stdio", "criticality": "critical"}
    status = ServerStatus(name="s", **kind, state=ServerState.ACTIVE, since=1.0, tools=("t",),
                          protocol_version="2025-11-25", server_name="n", server_version="1")  # fmt: skip
    exporter = _metrics.SidecarMetrics(lambda: [status])
    exporter.observe(ToolCalled(server="s", **kind, state=ServerState.ACTIVE, previous=ServerState.ACTIVE,
                                ts=1.0, tool="t", duration=0.01, error_type="tool_error"))  # fmt: skip
    exporter.observe(Lost(server="s", **kind, state=ServerState.RECONNECTING, previous=ServerState.ACTIVE,
                          ts=2.0, reason="exited", error="x", connected_for=1.0))  # fmt: skip
    exporter.record_server_operation("tools/call", 0.01, error_type="tool_error", tool="s__t",
                                     protocol_version="2025-11-25")  # fmt: skip
    exporter.record_server_session(1.0, "2025-11-25", error_type="closed")
    body, _ = exporter.render()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            base, _, suffix = sample.name.rpartition("_")
            name = base if base in HISTOGRAMS and suffix in {"bucket", "sum", "count"} else sample.name
            # `_created` is prometheus-client's creation time of a counter, not a series of the contract.
            if name.startswith("mcp_") and not name.endswith("_created"):
                labels.setdefault(name, set()).update(set(sample.labels) - {"le"})
    unrendered = set(FAMILIES) - set(labels)
    if unrendered:
        raise RuntimeError(f"tests/kit/conftest.py: no samples rendered for {sorted(unrendered)}")
    return {name: frozenset(names) for name, names in labels.items()}


class _Exposing:
    """What `GatewayCollector` reads of a gateway: one client, one server exposing one tool."""

    list_changed_sent = 1

    def sessions(self) -> dict[str, int]:
        return {"legacy": 1, "2026-07-28": 0}

    def catalog(self) -> Any:
        return self

    def exposed_counts(self) -> dict[str, dict[str, int]]:
        return {"s": {"tools": 1}}


def _gateway_labels() -> dict[str, frozenset[str]]:
    """name -> labels of the gateway's own series (`mcp_gateway_*`), as its collector renders them."""
    labels: dict[str, frozenset[str]] = {}
    for family in GatewayCollector(_Exposing()).collect():  # type: ignore[arg-type]
        for sample in family.samples:
            labels[sample.name] = frozenset(sample.labels)
    return labels


# The "Prometheus metrics" contract (README / DESIGN): name -> labels.
CONTRACT_METRICS: dict[str, frozenset[str]] = _exported_labels() | _gateway_labels()
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
