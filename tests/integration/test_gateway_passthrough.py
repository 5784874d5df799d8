"""A tool's result reaches the caller as the server sent it: the gateway hands the JSON object on
instead of rebuilding it (cheaper, and nothing is lost or added on the way), in every pairing of
the caller's era with the upstream's. Against tests/servers/conformance_upstream.py, whose tools
return every kind of content block the spec has."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mcp_types as types
import pytest
from mcp import Client
from support import free_port

from sidecar.config import ServerConfig

from .test_gateway import sidecar

if TYPE_CHECKING:
    from conftest import Service

pytestmark = pytest.mark.anyio

UPSTREAM = Path(__file__).resolve().parents[1] / "servers" / "conformance_upstream.py"
TOOLS = (
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_error_handling",
)
STAMP = "io.modelcontextprotocol/serverInfo"  # each hop's own: the gateway's, not the upstream's


def shown(result: types.CallToolResult) -> dict[str, Any]:
    """What a caller sees of a result, less the answering server's serverInfo stamp."""
    dumped = result.model_dump(by_alias=True, exclude_none=True)
    meta = {k: v for k, v in (dumped.pop("_meta", None) or {}).items() if k != STAMP}
    return {**dumped, "_meta": meta}


@pytest.mark.parametrize("upstream_era", ["legacy", "2026-07-28"])
async def test_tool_results_pass_through_unchanged(
    upstream_era: str,
    services: Callable[..., Service],
    server_config: Callable[..., ServerConfig],
) -> None:
    port = free_port()
    service = await services([sys.executable, str(UPSTREAM), "--port", str(port)], port=port).start()
    config = server_config(
        "conf", "streamable-http", url=service.url, protocol=upstream_era, gateway={"prefix": ""}
    )
    async with sidecar([config]) as running:
        assert running.manager.status("conf").active
        for era in ("legacy", "2026-07-28"):
            async with Client(service.url, mode=era) as direct, Client(running.url, mode=era) as through:
                for tool in TOOLS:
                    want = await direct.call_tool(tool, {})
                    got = await through.call_tool(tool, {})
                    assert shown(got) == shown(want), (era, tool)
                    assert got.content, (era, tool)  # something to compare: not two empty results
                if era == "2026-07-28":  # and the result says who answered it: the gateway (trap 6)
                    stamped = await through.call_tool("test_simple_text", {})
                    assert (stamped.meta or {})[STAMP]["name"] == "mcp-sidecar"
