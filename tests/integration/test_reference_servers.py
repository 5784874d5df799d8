"""Servers nobody here wrote: the npm reference servers (node) and mcp-server-time (PyPI)."""

from __future__ import annotations

import datetime
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import mcp_types as types
import pytest

from sidecar import MCPServerManager, ServerConfig

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard, Service

pytestmark = pytest.mark.anyio

ERA_2025 = re.compile(r"2025-\d\d-\d\d")


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_everything_over_stdio(
    node: str,
    everything_js: Path,
    server_config: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[..., bool]],
    leak_guard: LeakGuard,
) -> None:
    config = server_config("everything", command=node, args=[str(everything_js), "stdio"])
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        status = manager.status("everything")
        assert status.active, status
        assert status.protocol_version and ERA_2025.fullmatch(status.protocol_version), status
        assert status.server_name == "mcp-servers/everything"
        # The pinned release offers 13 tools; the exact set is its business, a handful is ours.
        assert len(status.tools) >= 10, status.tools
        assert {"echo", "get-sum", "get-tiny-image"} <= set(status.tools)
        assert [tool.name for tool in manager.tools()["everything"]] == list(status.tools)

        result = await manager.call_tool("everything", "echo", {"message": "hello from the sidecar"})
        assert not result.is_error
        assert "hello from the sidecar" in text_of(result)

        # `ping` on a legacy session: probes pass, none fails.
        await events.wait_for(is_event("everything", "health_check_passed"), timeout=3)
        assert not [e for e in events.drain() if e.kind == "health_check_failed"]
    leak_guard.assert_clean()


async def test_filesystem_reads_a_file_in_its_allowed_dir(
    node: str,
    filesystem_js: Path,
    server_config: Callable[..., ServerConfig],
    tmp_path: Path,
    leak_guard: LeakGuard,
) -> None:
    allowed = (tmp_path / "allowed").resolve()
    allowed.mkdir()
    (allowed / "note.txt").write_text("written by the integration test\n")
    manager = MCPServerManager([server_config("fs", command=node, args=[str(filesystem_js), str(allowed)])])
    async with manager:
        status = manager.status("fs")
        assert status.active, status
        assert {"read_text_file", "list_allowed_directories", "write_file"} <= set(status.tools)

        dirs = await manager.call_tool("fs", "list_allowed_directories", {})
        assert str(allowed) in text_of(dirs)
        content = await manager.call_tool("fs", "read_text_file", {"path": str(allowed / "note.txt")})
        assert not content.is_error
        assert "written by the integration test" in text_of(content)
        # Outside the allowed directory the server refuses: an error result, not a sidecar error.
        elsewhere = tmp_path / "outside.txt"
        elsewhere.write_text("not for the server")
        outside = await manager.call_tool("fs", "read_text_file", {"path": str(elsewhere)})
        assert outside.is_error
        assert "denied" in text_of(outside).lower(), text_of(outside)
        assert "not for the server" not in text_of(outside)
    leak_guard.assert_clean()


async def test_time_server_tells_utc_time(
    time_server_module: str, server_config: Callable[..., ServerConfig], leak_guard: LeakGuard
) -> None:
    config = server_config("time", command=sys.executable, args=["-m", time_server_module])
    manager = MCPServerManager([config])
    async with manager:
        status = manager.status("time")
        assert status.active, status
        assert "get_current_time" in status.tools
        result = await manager.call_tool("time", "get_current_time", {"timezone": "UTC"})
        assert not result.is_error
        assert result.structured_content is not None, result
        assert result.structured_content["timezone"] == "UTC"
        told = datetime.datetime.fromisoformat(result.structured_content["datetime"])
        now = datetime.datetime.now(datetime.UTC)
        assert told.utcoffset() == datetime.timedelta(0)
        assert abs((now - told).total_seconds()) < 120
    leak_guard.assert_clean()


async def test_everything_over_streamable_http(
    node: str,
    everything_js: Path,
    services: Callable[..., Service],
    server_config: Callable[..., ServerConfig],
) -> None:
    service = await services([node, str(everything_js), "streamableHttp"], port_env="PORT").start()
    manager = MCPServerManager([server_config("everything", "streamable-http", url=service.url)])
    async with manager:
        status = manager.status("everything")
        assert status.active, status
        assert status.protocol_version and ERA_2025.fullmatch(status.protocol_version), status
        assert "echo" in status.tools
        result = await manager.call_tool("everything", "echo", {"message": "over http"})
        assert "over http" in text_of(result)
