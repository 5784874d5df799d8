"""Hostile tool names and serverInfo, through a real manager, into metrics and both log formats.

The e2e test (tests/e2e/test_hostile_names.py) drives a real `mcp-sidecar run`; this one calls every
tool through `MCPServerManager.call_tool` (the 10 KB name too, which no URL can carry) and checks each
event's log line, JSON and text, on its own: exactly one line, printable, nothing forged.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from servers.behaving import HOSTILE_NAMES, HOSTILE_SERVER_INFO

from sidecar import MCPServerManager, ServerConfig
from sidecar.cli import status_table
from sidecar.events import Connected, ToolCalled
from sidecar.telemetry.logs import LogWriter, format_json, format_text
from sidecar.telemetry.metrics import SidecarMetrics
from sidecar.web.ops import health_document

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

TOOLS = ("echo", "add", "sleep", "pid", *HOSTILE_NAMES)
MISSING = tuple(f"missing {name}" for name in HOSTILE_NAMES[:6])  # unknown tools: failed calls


def escaped(text: str) -> str:
    """What a text log line shows for `text`: unprintable characters as Python escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def samples(text: str, openmetrics: bool) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = (parse_openmetrics if openmetrics else parse_text)(text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


async def test_hostile_names_through_the_manager_into_metrics_and_logs(
    python_server: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    leak_guard: LeakGuard,
) -> None:
    manager = MCPServerManager([python_server("--hostile-names", name="hostile")])
    metrics = SidecarMetrics(manager.statuses)
    events = watch(manager)
    async with manager:
        assert manager.status("hostile").tools == TOOLS
        prompts = [prompt.name for prompt in manager.status("hostile").offerings.prompts]
        assert set(HOSTILE_NAMES) <= set(prompts)  # listed exactly, for the gateway to expose (or not)
        for tool in HOSTILE_NAMES:
            result = await manager.call_tool("hostile", tool, {})
            assert not result.is_error and result.content[0].text == tool  # type: ignore[union-attr]
        for tool in MISSING:
            assert (await manager.call_tool("hostile", tool, {})).is_error
    everything = events.drain()
    for event in everything:
        metrics.observe(event)

    for openmetrics in (False, True):
        scraped = samples(metrics.render(openmetrics)[0].decode(), openmetrics)
        for tool in HOSTILE_NAMES:
            labels = (("server", "hostile"), ("tool", tool))
            assert scraped[("mcp_tool_calls_total", labels)] == 1, tool[:40]
        for tool in MISSING:
            labels = (("error_type", "tool_error"), ("server", "hostile"), ("tool", tool))
            assert scraped[("mcp_tool_call_errors_total", labels)] == 1, tool[:40]
        name, version = HOSTILE_SERVER_INFO
        info = [dict(labels) for (series, labels), _ in scraped.items() if series == "mcp_server_info"]
        assert [(i["implementation"], i["implementation_version"]) for i in info] == [(name, version)]

    connected = [e for e in everything if isinstance(e, Connected)]
    failed_calls = [e for e in everything if isinstance(e, ToolCalled) and e.error_type is not None]
    assert len(connected) == 1 and len(failed_calls) == len(MISSING)
    written = 0
    for event in everything:
        for formatter in (format_json, format_text):
            out = io.StringIO()
            LogWriter(formatter, out).write(event)
            line = out.getvalue()
            if not line:
                continue  # a passing probe or a successful call: no line at all
            written += 1
            # One line, whole: no raw line break of any kind, no control or bidi character.
            assert line.endswith("\n") and line[:-1].isprintable(), repr(line[:300])
            if formatter is format_json:
                record = json.loads(line)
                assert record["event"] == event.kind and record["server"] == "hostile"
                if isinstance(event, Connected):
                    assert record["tools"] == list(TOOLS)
                    assert (record["server_name"], record["server_version"]) == HOSTILE_SERVER_INFO
                if isinstance(event, ToolCalled):
                    assert record["tool"] in MISSING
            elif isinstance(event, ToolCalled):  # text: the name escaped, still readable
                assert f"tool={escaped(event.tool)}" in line, repr(line)
    assert written >= 2 * (1 + len(MISSING))
    leak_guard.assert_clean()


# A server's last words before it dies become its last_error, word for word.
LAST_WORDS = r"printf 'starting\nfatal: \033[2J\033[31mred\r ok \342\200\256reversed\n' >&2; exit 3"


async def test_a_servers_last_words_reach_the_status_table_and_text_logs_escaped(
    server_config: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[..., bool]],
    leak_guard: LeakGuard,
) -> None:
    give_up = {"max_attempts": 1, "on_give_up": "keep"}
    config = server_config("talker", command="sh", args=["-c", LAST_WORDS], reconnect=give_up)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        await events.wait_for(is_event("talker", "gave_up"), timeout=10)
        document = health_document(manager.statuses())
    error = document["servers"][0]["last_error"]
    assert error == "exited with code 3: fatal: \x1b[2J\x1b[31mred\r ok \u202ereversed"  # as it was said
    table = status_table(document)
    assert all(line.isprintable() for line in table.splitlines()), table
    assert "exited with code 3: fatal: \\x1b[2J\\x1b[31mred\\r ok \\u202ereversed" in table
    for event in events.drain():
        assert format_text(event).isprintable()
    leak_guard.assert_clean()
