"""The alert rules: promtool-clean, unit-tested by promtool, annotated, pointing at the runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

RUNBOOK_PREFIX = "https://github.com/mcp-sidecar/mcp-sidecar/blob/main/alerts/runbook.md#"
REQUIRED_ALERTS = {
    "MCPCriticalServerDown": "critical",
    "MCPOptionalServerDown": "warning",
    "MCPAllServersDown": "critical",
    "MCPServerFlapping": "warning",
    "MCPServerReconnectsFailing": "warning",
    "MCPServerProbesSlow": "warning",
    "MCPSidecarDown": "critical",
    "MCPSidecarAbsent": "warning",
}
# The alerts about one MCP server: their expression keeps the `server` label, and their
# summary and description name the server.
PER_SERVER_ALERTS = {
    "MCPCriticalServerDown",
    "MCPOptionalServerDown",
    "MCPServerFlapping",
    "MCPServerReconnectsFailing",
    "MCPServerProbesSlow",
}
_AGGREGATION = re.compile(
    r"\b(?:sum|min|max|avg|group|stddev|stdvar|count|count_values|bottomk|topk|quantile|limitk|limit_ratio)\s*"
    r"(?:(?P<before>by|without)\s*\((?P<before_labels>[^)]*)\))?\s*\("
)
_TRAILING_CLAUSE = re.compile(r"\s*(?P<after>by|without)\s*\((?P<after_labels>[^)]*)\)")


def promtool_run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def keeps_label(
    expr: str, label: str, contract: Mapping[str, frozenset[str]], promql_metrics: Callable[[str], set[str]]
) -> bool:
    """Whether the series `expr` yields carry `label`: every aggregation keeps it (`by` naming
    it, or `without` not naming it), no `absent()`, and every metric read is exported with it."""
    if "absent(" in expr:
        return False
    for match in _AGGREGATION.finditer(expr):
        kind, labels = match["before"], match["before_labels"]
        if kind is None:  # `sum(...) by (...)`, or no clause: look after the closing parenthesis
            depth, end = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(expr[end], 0)
                end += 1
            trailing = _TRAILING_CLAUSE.match(expr, end)
            if trailing is None:
                return False  # aggregated over everything
            kind, labels = trailing["after"], trailing["after_labels"]
        named = {name.strip() for name in labels.split(",")}
        if (kind == "by") != (label in named):
            return False
    names = promql_metrics(expr)
    families = {name if name in contract else re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
    return bool(families) and all(label in contract.get(family, frozenset()) for family in families)


def test_promtool_check_rules_is_clean(promtool: str, repo: Path) -> None:
    result = promtool_run(promtool, "check", "rules", "alerts/mcp-sidecar.rules.yml", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(REQUIRED_ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool: str, repo: Path) -> None:
    files = sorted(str(p.relative_to(repo)) for p in (repo / "alerts" / "tests").glob("*.yml"))
    assert files, "no promtool unit test files in alerts/tests/"
    result = promtool_run(promtool, "test", "rules", *files, cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        # waiting longer than the tests expect: the "fires after `for`" cases must catch it
        ("MCPCriticalServerDown", "for: 1m", "for: 3m"),
        # an optional server paging: the severity label is asserted
        ("MCPOptionalServerDown", "severity: warning", "severity: critical"),
        # a blip firing at once: the "shorter than `for`" cases must catch it
        ("MCPSidecarDown", "for: 2m", "for: 0m"),
    ],
)
def test_promtool_unit_tests_catch_a_broken_rule(
    promtool: str, repo: Path, tmp_path: Path, alert: str, old: str, new: str
) -> None:
    """The unit tests can fail: run against a deliberately broken copy of the rules, they do."""
    copy = tmp_path / "alerts"
    shutil.copytree(repo / "alerts", copy)
    rules = copy / "mcp-sidecar.rules.yml"
    text = rules.read_text()
    start = text.index(f"- alert: {alert}\n")
    end = text.find("- alert:", start + 1)
    end = len(text) if end < 0 else end
    block = text[start:end]
    assert old in block, f"{alert} no longer has {old!r}: update this test"
    rules.write_text(text[:start] + block.replace(old, new, 1) + text[end:])
    files = [str(p.relative_to(copy)) for p in sorted((copy / "tests").glob("*.yml"))]
    result = promtool_run(promtool, "test", "rules", *files, cwd=copy)
    assert result.returncode != 0, f"promtool tests still pass with {alert} {old!r} -> {new!r}"
    assert alert in result.stdout + result.stderr


def test_every_required_alert_exists_with_its_severity(alert_rules: list[dict[str, Any]]) -> None:
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in alert_rules}
    assert severities == REQUIRED_ALERTS


@pytest.mark.parametrize(
    ("expr", "keeps"),
    [
        ("mcp_server_up == 0", True),
        ("changes(mcp_server_last_state_change_timestamp_seconds[15m]) > 6", True),
        ("max by (job, server) (mcp_server_up) == 0", True),
        ("max(mcp_server_up) by (server) == 0", True),
        ("sum without (tool) (rate(mcp_tool_calls_total[5m]))", True),
        (
            "histogram_quantile(0.9, sum by (server, le) (rate(mcp_tool_call_duration_seconds_bucket[5m])))",
            True,
        ),
        ("max by (job, instance) (mcp_server_up) == 0", False),
        ("max(mcp_server_up) == 0", False),
        ("sum(rate(mcp_tool_calls_total[5m])) by (job)", False),
        ("sum without (server) (mcp_server_tools)", False),
        ("mcp_servers_active == 0", False),
        ('up{job="mcp-sidecar"} == 0', False),
        ('absent(mcp_server_up{job="mcp-sidecar"})', False),
    ],
)
def test_the_per_server_check_reads_promql(
    expr: str,
    keeps: bool,
    contract: Mapping[str, frozenset[str]],
    promql_metrics: Callable[[str], set[str]],
) -> None:
    assert keeps_label(expr, "server", contract, promql_metrics) is keeps


def test_every_alert_is_annotated_and_templated(
    alert_rules: list[dict[str, Any]],
    contract: Mapping[str, frozenset[str]],
    promql_metrics: Callable[[str], set[str]],
) -> None:
    per_server = {
        rule["alert"] for rule in alert_rules if keeps_label(rule["expr"], "server", contract, promql_metrics)
    }
    assert per_server == PER_SERVER_ALERTS
    for rule in alert_rules:
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description", "runbook_url"}, rule["alert"]
        assert annotations["runbook_url"].startswith(RUNBOOK_PREFIX), rule["alert"]
        if rule["alert"] in PER_SERVER_ALERTS:  # per-server alerts: the on-call must see which one
            for key in ("summary", "description"):
                assert "{{ $labels.server }}" in annotations[key], (rule["alert"], key)
        else:
            assert "$labels.instance" in annotations["description"] or "absent(" in rule["expr"]


def test_runbook_has_a_section_for_every_alert_and_every_url_resolves(
    repo: Path, alert_rules: list[dict[str, Any]]
) -> None:
    runbook = (repo / "alerts" / "runbook.md").read_text()
    headings = re.findall(r"^## (.+)$", runbook, flags=re.MULTILINE)
    anchors = {github_anchor(h) for h in headings}
    for rule in alert_rules:
        anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_PREFIX)
        assert anchor in anchors, f"{rule['alert']}: no '## ' heading for #{anchor} in alerts/runbook.md"
        section = runbook.split(f"## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means.**", "**Confirm.**", "**Do.**"):
            assert part in section, f"runbook section {rule['alert']} lacks {part}"
    assert set(headings) == {rule["alert"] for rule in alert_rules}


def test_rules_read_only_contract_metrics(
    alert_rules: list[dict[str, Any]],
    promql_metrics: Callable[[str], set[str]],
    is_known_series: Callable[[str], bool],
) -> None:
    for rule in alert_rules:
        names = promql_metrics(rule["expr"])
        assert names, rule["alert"]
        unknown = {name for name in names if not is_known_series(name)}
        assert not unknown, f"{rule['alert']} reads metrics outside the contract: {unknown}"


def test_an_optional_server_can_never_page(alert_rules: list[dict[str, Any]]) -> None:
    """Critical rules about single servers are scoped to criticality="critical"."""
    for rule in alert_rules:
        if rule["labels"]["severity"] == "critical" and "mcp_server_" in rule["expr"]:
            assert 'criticality="critical"' in rule["expr"], rule["alert"]
    optional = [rule for rule in alert_rules if 'criticality="optional"' in rule["expr"]]
    assert optional and all(rule["labels"]["severity"] == "warning" for rule in optional)


def test_every_alert_has_promtool_cases_that_fire_and_that_must_not(
    repo: Path, alert_rules: list[dict[str, Any]]
) -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in (repo / "alerts" / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules}
    assert names - fires == set(), "alerts without a firing test case"
    assert names - silent == set(), "alerts without a must-not-fire test case"
