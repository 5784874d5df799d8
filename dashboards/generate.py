"""Generate the Grafana dashboard `dashboards/mcp-sidecar.json` from code.

    python dashboards/generate.py           # rewrite dashboards/mcp-sidecar.json
    python dashboards/generate.py --check   # exit 1 if the committed JSON is not what this generates
    python dashboards/generate.py --stdout  # print it

Needs `grafana-foundation-sdk==0.0.21` (a test dependency). Metric names are the contract
table of the README; every rate uses `$__rate_interval`, every panel has a unit.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    FieldColorModeId,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.dashboard import Threshold as ThresholdStep

OUTPUT = Path(__file__).resolve().parent / "mcp-sidecar.json"
UID = "mcp-sidecar"  # stable: links, provisioning and alert annotations rely on it
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query filters on the dashboard's variables; `$server` only where a server label exists.
SIDECAR = 'job=~"$job", instance=~"$instance"'
SERVER = f'{SIDECAR}, server=~"$server"'
# The OpenTelemetry MCP convention histograms name the configured server `mcp_sidecar_server`.
CONVENTION = f'{SIDECAR}, mcp_sidecar_server=~"$server"'
QUANTILES = (0.5, 0.95, 0.99)
# Numeric codes of `mcp_server_state` for the state timeline (the metric is a state set).
STATES = (
    ("active", "green"),
    ("connecting", "blue"),
    ("reconnecting", "orange"),
    ("failed", "red"),
    ("dropped", "dark-red"),
    ("stopped", "gray"),
)


def query(
    expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False
) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return target.instant() if instant else target.range()


def rate(metric: str, selector: str = SERVER) -> str:
    return f"rate({metric}{{{selector}}}[$__rate_interval])"


def quantile(q: float, histogram: str, by: str, selector: str = SERVER) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) ({rate(histogram + '_bucket', selector)}))"


def percentiles(histogram: str) -> list[prometheus.Dataquery]:
    """One query per quantile of QUANTILES, per server."""
    return [
        query(quantile(q, histogram, "server"), f"{{{{server}}}} p{round(q * 100)}", chr(ord("A") + i))
        for i, q in enumerate(QUANTILES)
    ]


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([ThresholdStep(value=value, color=color) for value, color in steps])
    )


def stat_panel(
    title: str,
    description: str,
    expr: str,
    unit: str,
    *steps: tuple[float | None, str],
    legend: str = "__auto",
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend, instant=True))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .height(4)
        .span(4)
    )


def graph(
    title: str, description: str, unit: str, targets: Sequence[prometheus.Dataquery]
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .fill_opacity(10)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .height(8)
        .span(12)
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def overview_row() -> list[Any]:
    critical_up = f'mcp_server_up{{{SIDECAR}, criticality="critical"}}'
    return [
        dash.Row("Overview"),
        stat_panel(
            "Active servers",
            "MCP servers connected and healthy now.",
            f"sum(mcp_servers_active{{{SIDECAR}}})",
            "short",
            (None, "blue"),
        ),
        stat_panel(
            "Failed servers",
            "Servers failed after their last reconnect attempt and not yet dropped.",
            f"sum(mcp_servers_failed{{{SIDECAR}}})",
            "short",
            (None, "green"),
            (1, "orange"),
        ),
        stat_panel(
            "Configured servers",
            "Servers in the sidecar configs.",
            f"sum(mcp_servers_configured{{{SIDECAR}}})",
            "short",
            (None, "blue"),
        ),
        stat_panel(
            "Critical servers down",
            "Critical servers not active: each one pages after 1m.",
            f"sum(1 - {critical_up})",
            "short",
            (None, "green"),
            (1, "red"),
        ),
        stat_panel(
            "Dropped servers",
            "Servers taken out of service on purpose (on_give_up: drop after the last reconnect attempt, "
            "or an operator's drop). An optional one raises no alert; reconnect it or remove it from the "
            "config (runbook: Dropped servers).",
            f'sum(mcp_server_state{{{SERVER}, state="dropped"}})',
            "short",
            (None, "green"),
            (1, "orange"),
        ),
        stat_panel(
            "Internal errors",
            "Bugs of the sidecar's own caught by a supervisor since the sidecar started "
            "(mcp_sidecar_internal_errors_total; each one is logged with its traceback).",
            f"sum(mcp_sidecar_internal_errors_total{{{SIDECAR}}})",
            "short",
            (None, "green"),
            (1, "red"),
        ),
        stat_panel(
            "Sidecars scraped",
            "Sidecar instances Prometheus scrapes successfully.",
            f"sum(up{{{SIDECAR}}})",
            "short",
            (None, "red"),
            (1, "green"),
        ),
        stat_panel(
            "Build",
            "mcp-sidecar version (and mcp SDK version) of the running sidecars.",
            f"count by (version, mcp_version) (mcp_sidecar_build_info{{{SIDECAR}}})",
            "none",
            (None, "text"),
            legend="{{version}} (mcp {{mcp_version}})",
        ).text_mode(common.BigValueTextMode.NAME),
    ]


def server_row() -> list[Any]:
    codes = " or ".join(
        f'mcp_server_state{{{SERVER}, state="{state}"}} * {code}' for code, (state, _) in enumerate(STATES, 1)
    )
    mapping = ValueMap(
        options={
            str(code): ValueMappingResult(text=state, color=color, index=code - 1)
            for code, (state, color) in enumerate(STATES, 1)
        }
    )
    timeline = (
        statetimeline.Panel()
        .title("Server state")
        .description("The lifecycle state of every server over time (mcp_server_state).")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (server) ({codes})", "{{server}}"))
        .unit("none")
        .mappings([mapping])
        .color_scheme(dash.FieldColor().mode(FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds((None, "gray")))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .height(8)
        .span(16)
    )
    return [
        dash.Row("Servers"),
        timeline,
        graph(
            "Tools per server",
            "Tools each server offers (mcp_server_tools).",
            "short",
            [query(f"max by (server) (mcp_server_tools{{{SERVER}}})", "{{server}}")],
        ).span(8),
        graph(
            "Reconnects",
            "Reconnect attempts started and failed, per minute.",
            "opm",
            [
                query(
                    f"sum by (server) ({rate('mcp_server_reconnect_attempts_total')}) * 60",
                    "{{server}} attempts",
                    "A",
                ),
                query(
                    f"sum by (server) ({rate('mcp_server_reconnect_failures_total')}) * 60",
                    "{{server}} failures",
                    "B",
                ),
            ],
        ),
        graph(
            "Disconnects by reason",
            "Connections lost per minute, by reason.",
            "opm",
            [
                query(
                    f"sum by (server, reason) ({rate('mcp_server_disconnects_total')}) * 60",
                    "{{server}} {{reason}}",
                ),
            ],
        ),
        graph(
            "Connect latency",
            "Connect + initialize + tools/list, percentiles per server.",
            "s",
            percentiles("mcp_server_connect_duration_seconds"),
        ),
        graph(
            "Probe latency",
            "Health probe round trip, percentiles per server.",
            "s",
            percentiles("mcp_server_health_check_duration_seconds"),
        ),
        graph(
            "Probe failures",
            "Failed health probes per minute.",
            "opm",
            [
                query(
                    f"sum by (server) ({rate('mcp_server_health_check_failures_total')}) * 60", "{{server}}"
                ),
            ],
        ),
        graph(
            "Time in current state",
            "Seconds since each server's last state change.",
            "s",
            [
                query(
                    f"time() - max by (server) (mcp_server_last_state_change_timestamp_seconds{{{SERVER}}})",
                    "{{server}}",
                ),
            ],
        ),
    ]


def tool_row() -> list[Any]:
    return [
        dash.Row("Tool calls (gateway)"),
        graph(
            "Tool call rate",
            "Calls through the gateway per second, by server and tool.",
            "reqps",
            [
                query(f"sum by (server, tool) ({rate('mcp_tool_calls_total')})", "{{server}}/{{tool}}"),
            ],
        ).span(8),
        graph(
            "Tool call errors",
            "Failed calls per second, by server, tool and error type.",
            "reqps",
            [
                query(
                    f"sum by (server, tool, error_type) ({rate('mcp_tool_call_errors_total')})",
                    "{{server}}/{{tool}} {{error_type}}",
                ),
            ],
        ).span(8),
        graph(
            "Tool call latency",
            "Call latency through the gateway, percentiles per server.",
            "s",
            percentiles("mcp_tool_call_duration_seconds"),
        ).span(8),
    ]


def operations_row() -> list[Any]:
    """The OpenTelemetry MCP convention histograms: every request sent upstream, every session."""
    operations = "mcp_client_operation_duration_seconds"
    sessions = "mcp_client_session_duration_seconds"
    failed = CONVENTION + ', error_type!=""'

    def by(histogram: str, label: str, quantiles: Sequence[float]) -> list[prometheus.Dataquery]:
        return [
            query(
                quantile(q, histogram, label, CONVENTION), f"{{{{{label}}}}} p{round(q * 100)}", chr(65 + i)
            )
            for i, q in enumerate(quantiles)
        ]

    return [
        dash.Row("Upstream MCP operations (OpenTelemetry conventions)"),
        graph(
            "Upstream latency by method",
            "Every request the sidecar sends to its servers (initialize or server/discover, tools/list, "
            "the ping / server/discover probes, tools/call), p50 and p99 by MCP method "
            "(mcp.client.operation.duration).",
            "s",
            by(operations, "mcp_method_name", (0.5, 0.99)),
        ).span(8),
        graph(
            "Upstream errors by method",
            "Failed upstream requests per second, by MCP method and error type (a JSON-RPC code, "
            "tool_error, timeout, closed ...: README, Error types).",
            "reqps",
            [
                query(
                    f"sum by (mcp_method_name, error_type) ({rate(operations + '_count', failed)})",
                    "{{mcp_method_name}} {{error_type}}",
                ),
            ],
        ).span(8),
        graph(
            "Upstream session duration",
            "How long connections to each server lasted before they ended, p50 and p99 "
            "(mcp.client.session.duration; error_type says why a lost one ended).",
            "s",
            by(sessions, "mcp_sidecar_server", (0.5, 0.99)),
        ).span(8),
    ]


def gateway_row() -> list[Any]:
    """The gateway: who is connected, what it exposes, what it tells them, how it answers."""
    operations = "mcp_server_operation_duration_seconds"
    sessions = "mcp_server_session_duration_seconds"
    failed = SIDECAR + ', error_type!=""'

    def by(histogram: str, label: str) -> list[prometheus.Dataquery]:
        legend = f"{{{{{label}}}}} " if label else ""
        group = f"{label}, le" if label else "le"
        return [
            query(
                f"histogram_quantile({q}, sum by ({group}) ({rate(histogram + '_bucket', SIDECAR)}))",
                f"{legend}p{round(q * 100)}",
                chr(65 + i),
            )
            for i, q in enumerate((0.5, 0.99))
        ]

    return [
        dash.Row("Gateway"),
        graph(
            "Gateway clients",
            "Clients connected to the gateway now: initialize-era sessions (legacy) and 2026-07-28 "
            "listen streams (mcp_gateway_sessions).",
            "short",
            [query(f"sum by (era) (mcp_gateway_sessions{{{SIDECAR}}})", "{{era}}")],
        ).span(8),
        graph(
            "Tools exposed",
            "Tools the gateway offers now, by the server that owns them: a server that is not active "
            "offers none (mcp_gateway_tools_exposed).",
            "short",
            [query(f"sum by (server) (mcp_gateway_tools_exposed{{{SERVER}}})", "{{server}}")],
        ).span(8),
        graph(
            "List changes sent",
            "list_changed notifications and listen events sent to gateway clients per second "
            "(mcp_gateway_list_changed_sent_total): a server came, went or changed its lists.",
            "ops",
            [query(f"sum({rate('mcp_gateway_list_changed_sent_total', SIDECAR)})", "sent")],
        ).span(8),
        graph(
            "Gateway latency by method",
            "Every request the gateway answers, p50 and p99 by MCP method (mcp.server.operation.duration).",
            "s",
            by(operations, "mcp_method_name"),
        ).span(8),
        graph(
            "Gateway errors by method",
            "Requests the gateway answered with an error per second, by MCP method and error type "
            "(a JSON-RPC code, tool_error ...).",
            "reqps",
            [
                query(
                    f"sum by (mcp_method_name, error_type) ({rate(operations + '_count', failed)})",
                    "{{mcp_method_name}} {{error_type}}",
                ),
            ],
        ).span(8),
        graph(
            "Gateway session duration",
            "How long gateway client sessions lasted when they ended, p50 and p99 "
            "(mcp.server.session.duration).",
            "s",
            by(sessions, ""),
        ).span(8),
    ]


def variables() -> list[Any]:
    def label_values(name: str, label: str, source: str, *, all_: bool) -> dash.QueryVariable:
        definition = f"label_values({source}, {label})"
        variable = (
            dash.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(
                {"qryType": 1, "query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"}
            )
            .definition(definition)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(all_)
            .include_all(all_)
        )
        return (
            variable.all_value(".*").current(VariableOption(text="All", value="$__all")) if all_ else variable
        )

    return [
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(text="Prometheus", value="prometheus")),
        label_values("job", "job", "mcp_sidecar_build_info", all_=False),
        label_values("instance", "instance", 'mcp_sidecar_build_info{job=~"$job"}', all_=True),
        label_values("server", "server", f"mcp_server_up{{{SIDECAR}}}", all_=True),
    ]


def build() -> dict[str, Any]:
    """The dashboard as plain JSON data."""
    # The SDK marks the v1 dashboard builders deprecated in favour of v2; v1 JSON is what file
    # provisioning and every Grafana 10-12 import, so v1 it is.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        builder = (
            dash.Dashboard("MCP sidecar")
            .uid(UID)
            .description(
                "The MCP servers behind mcp-sidecar: state, reconnects, probes and gateway tool calls."
            )
            .tags(["mcp", "mcp-sidecar"])
            .editable()
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .refresh("30s")
            .time("now-3h", "now")
            .timezone("browser")
            .variables(variables())
            .link(
                dash.DashboardLink("Runbook")
                .url("https://github.com/mcp-sidecar/mcp-sidecar/blob/main/alerts/runbook.md")
                .target_blank(True)
            )
        )
        for item in [*overview_row(), *server_row(), *tool_row(), *gateway_row(), *operations_row()]:
            builder = builder.with_row(item) if isinstance(item, dash.Row) else builder.with_panel(item)
        data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare with the committed JSON")
    mode.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
    elif args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python dashboards/generate.py", file=sys.stderr)
            return 1
    else:
        OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
