"""examples/openai_agents: the helpdesk agent runs for real, with a scripted model instead of an LLM.

`Runner.run` of the OpenAI Agents SDK drives a `ScriptedModel` (a tool call, then the final
answer) against real MCP servers over streamable HTTP: first one upstream directly, then
mcp-sidecar's gateway as the agent's only MCP server, where a SIGKILLed server's tools leave
the agent's tool list (and the gateway says so with `notifications/tools/list_changed`).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from externals import require
from support import LOCALHOST, REPO, free_port, wait_for

from .harness import CLI, SidecarProcess, health, write_config

if TYPE_CHECKING:
    from conftest import Service

EXAMPLE = REPO / "examples" / "openai_agents"
SERVERS = EXAMPLE / "enterprise_servers.py"

pytestmark = pytest.mark.anyio


@pytest.fixture
def helpdesk() -> Any:
    """The example's modules (agent.py puts its own folder on sys.path for scripted_model)."""
    require(importlib.util.find_spec("agents") is not None, "the openai-agents package")
    sys.path.insert(0, str(EXAMPLE))
    try:
        import agent
        import scripted_model
    finally:
        sys.path.remove(str(EXAMPLE))
    return agent, scripted_model


@pytest.fixture
def enterprise(services: Callable[..., Service]) -> Callable[[str], Awaitable[Service]]:
    """`await enterprise("directory" | "tickets")`: that example server over streamable HTTP."""

    async def start(role: str) -> Service:
        port = free_port()
        argv = [sys.executable, str(SERVERS), role, "--transport", "streamable-http", "--port", str(port)]
        return await services(argv, port=port).start()

    return start


async def tickets_of(url: str) -> list[dict[str, Any]]:
    """What the tickets server itself says it has opened (not what the agent claims)."""
    from mcp import Client

    with anyio.fail_after(10):
        async with Client(url, mode="legacy") as client:
            result = await client.call_tool("list_tickets", {})
    assert not result.is_error, result
    structured = result.structured_content or {}
    return list(structured.get("result", []))


def test_the_example_config_is_valid() -> None:
    config = EXAMPLE / "sidecar.yaml"
    done = subprocess.run(
        [*CLI, "check", "-c", str(config)], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "ok, 2 servers" in done.stdout


async def test_the_agent_opens_a_ticket_on_a_direct_upstream(
    helpdesk: Any, enterprise: Callable[[str], Awaitable[Service]]
) -> None:
    agent, scripted = helpdesk
    tickets = await enterprise("tickets")
    model = scripted.ScriptedModel(agent.demo_script("Ada Lovelace", "ada@example.com", "VPN is down")[1:])

    with anyio.fail_after(30):
        result = await agent.ask(tickets.url, "Ada cannot reach the VPN", model)

    assert model.offered == [["list_tickets", "open_ticket"]] * 2  # the call's turn, the answer's turn
    opened = await tickets_of(tickets.url)
    assert [(t["id"], t["title"], t["requester"]) for t in opened] == [
        ("IT-1001", "VPN is down", "ada@example.com")
    ]
    assert result.final_output.startswith("Done: ") and '"IT-1001"' in result.final_output


async def test_through_the_gateway_a_killed_servers_tools_leave_the_agent(
    helpdesk: Any,
    enterprise: Callable[[str], Awaitable[Service]],
    sidecars: Callable[..., SidecarProcess],
    tmp_path: Path,
    wait_until: Callable[..., Awaitable[None]],
) -> None:
    import mcp_types as types
    from mcp import Client

    agent, scripted = helpdesk
    directory, tickets = await enterprise("directory"), await enterprise("tickets")
    ops, gateway_port = free_port(), free_port()
    servers = "".join(
        f"  - {{name: {s}, transport: streamable-http, url: '{url}'}}\n"
        for s, url in (("directory", directory.url), ("tickets", tickets.url))
    )
    gateway = f"  gateway: {{listen: '{LOCALHOST}:{gateway_port}', path: /mcp}}\n"
    sidecars(write_config(tmp_path, ops, servers, gateway))
    wait_for(
        lambda: (h := health(ops)) is not None and sorted(h["active"]) == ["directory", "tickets"],
        30,
        "both servers active",
    )
    all_tools = [
        "directory__find_employee",
        "directory__list_teams",
        "tickets__list_tickets",
        "tickets__open_ticket",
    ]
    pushed: list[Any] = []

    async def on_message(message: Any) -> None:
        pushed.append(message)

    def told_list_changed() -> bool:
        return any(isinstance(getattr(m, "root", m), types.ToolListChangedNotification) for m in pushed)

    url = f"http://{LOCALHOST}:{gateway_port}/mcp"
    model = scripted.ScriptedModel(
        agent.demo_script("Ada Lovelace", "ada@example.com", "Laptop will not boot")
    )
    # Beside the agent, an initialize-era client: the one kind the gateway can push a change to
    # unasked (the agents SDK speaks 2026-07-28 to it and opens no `subscriptions/listen`).
    async with (
        agent.gateway_server(url) as server,
        Client(url, mode="legacy", message_handler=on_message) as watcher,
    ):
        with anyio.fail_after(30):
            first = await agent.answer(server, model, "Ada's laptop will not boot")
        assert model.offered == [all_tools] * 3
        assert [t["id"] for t in await tickets_of(tickets.url)] == ["IT-1001"]
        assert '"IT-1001"' in first.final_output
        assert sorted(t.name for t in (await watcher.list_tools()).tools) == all_tools

        tickets.kill()
        with anyio.fail_after(10):
            while any(tool.name.startswith("tickets__") for tool in await server.list_tools()):
                await anyio.sleep(0.05)
        await wait_until(told_list_changed, 5, "the watcher told of the change")

        model = scripted.ScriptedModel(
            [scripted.CallTool("find_employee", {"name": "grace"}), scripted.Answer("Found: {output}")]
        )
        with anyio.fail_after(30):
            second = await agent.answer(server, model, "Who is Grace?")
        assert model.offered == [["directory__find_employee", "directory__list_teams"]] * 2
        assert "grace@example.com" in second.final_output
