"""The gateway with real clients (the SDK's `Client`, both eras) in front of real servers.

Each test runs the sidecar's pieces in-process, as `mcp-sidecar run` wires them: the
manager, the gateway (built before the manager starts) and its HTTP endpoint on a free
port. Upstreams are `tests/servers/behaving.py` over stdio and streamable HTTP.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged

from sidecar.app import GatewayCollector, build_gateway, serve_gateway
from sidecar.config import GatewayConfig, ServerConfig, SidecarConfig, SidecarSettings
from sidecar.events import ToolCalled
from sidecar.gateway import Gateway
from sidecar.manager import MCPServerManager
from sidecar.telemetry.metrics import SidecarMetrics
from sidecar.web.gateway_http import _STOP_TIMEOUT

if TYPE_CHECKING:
    from conftest import EventLog, Service

pytestmark = pytest.mark.anyio

HttpServer = Callable[..., Awaitable["Service"]]
Wait = Callable[..., Awaitable[None]]
BEHAVING_TOOLS = ["echo", "add", "sleep", "pid"]


@dataclass
class Running:
    manager: MCPServerManager
    gateway: Gateway
    url: str


@asynccontextmanager
async def sidecar(servers: Sequence[ServerConfig], **gateway: Any) -> AsyncIterator[Running]:
    """Manager, gateway and its endpoint on a free port, as the CLI wires them."""
    settings = SidecarSettings(listen="127.0.0.1:0", gateway=GatewayConfig(listen="127.0.0.1:0", **gateway))
    config = SidecarConfig(sidecar=settings, servers=tuple(servers))
    manager = MCPServerManager(config)
    built = build_gateway(manager, config)
    assert built is not None
    async with serve_gateway(built, config) as port, manager:
        yield Running(manager, built, f"http://127.0.0.1:{port}/mcp")


@dataclass
class Heard:
    """What a client was told: list_changed notifications (legacy) or listen events (2026)."""

    tools_changed: int = 0
    messages: list[Any] = field(default_factory=list)

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)
        if isinstance(message, types.ToolListChangedNotification | ToolsListChanged):
            self.tools_changed += 1


async def listen(client: Client, heard: Heard, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    """A 2026-07-28 client's listen stream, feeding `heard` until cancelled."""
    async with client.listen(
        tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
    ) as sub:
        task_status.started()
        async for event in sub:
            await heard(event)


def names(result: types.ListToolsResult) -> list[str]:
    return [tool.name for tool in result.tools]


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_both_eras_list_and_call_through_one_endpoint(
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    http_server: HttpServer,
) -> None:
    service = await http_server("streamable-http")
    upstreams = [python_server(name="local"), server_config("remote", "streamable-http", url=service.url)]
    async with (
        sidecar(upstreams) as running,
        Client(running.url, mode="legacy") as legacy,
        Client(running.url, mode="2026-07-28") as modern,
    ):
        expected = [f"local__{t}" for t in BEHAVING_TOOLS] + [f"remote__{t}" for t in BEHAVING_TOOLS]
        assert names(await legacy.list_tools()) == expected
        assert names(await modern.list_tools()) == expected
        # Trap 1: an initialize-era client is told that it will hear about changes.
        assert legacy.server_capabilities.tools is not None and legacy.server_capabilities.tools.list_changed
        assert legacy.server_info is not None and legacy.server_info.name == "mcp-sidecar"
        for client in (legacy, modern):
            added = await client.call_tool("local__add", {"a": 20, "b": 22})
            assert added.structured_content == {"result": 42} and not added.is_error
            served = await client.call_tool("remote__pid", {})
            assert served.structured_content == {"result": service.pid}
        assert running.gateway.sessions()["legacy"] == 1
        # Prompts and resources of both servers, named and addressed like the tools.
        for client in (legacy, modern):
            prompts = [prompt.name for prompt in (await client.list_prompts()).prompts]
            assert prompts == ["local__greet", "remote__greet"]
            got = await client.get_prompt("remote__greet", {"name": "Ada"})
            assert "Hello, Ada!" in str(got.messages[0].content)
            uris = [resource.uri for resource in (await client.list_resources()).resources]
            assert uris == ["mcp-sidecar://local/behaving://readme", "mcp-sidecar://remote/behaving://readme"]
            item = await client.read_resource("mcp-sidecar://remote/behaving://items/7")
            assert item.contents[0].uri == "mcp-sidecar://remote/behaving://items/7"
            assert item.contents[0].text == "item 7"  # type: ignore[union-attr]
        # A 2026-07-28 result says who answered it: the gateway, not the server behind it (trap 6).
        stamped = await modern.call_tool("local__echo", {"text": "x"})
        assert (stamped.meta or {}).get("io.modelcontextprotocol/serverInfo", {}).get("name") == "mcp-sidecar"


async def test_tool_descriptions_and_schemas_pass_through(
    python_server: Callable[..., ServerConfig],
) -> None:
    async with (
        sidecar([python_server(name="local")]) as running,
        Client(running.url, mode="legacy") as client,
    ):
        exposed = {tool.name: tool for tool in (await client.list_tools()).tools}
        own = {tool.name: tool for tool in running.manager.tools()["local"]}
        assert own and set(exposed) == {f"local__{name}" for name in own}
        for name, tool in own.items():
            shown = exposed[f"local__{name}"]
            assert shown.model_dump(exclude={"name"}) == tool.model_dump(exclude={"name"})


async def test_bad_calls_get_clear_errors_and_the_gateway_keeps_serving(
    python_server: Callable[..., ServerConfig],
) -> None:
    async with (
        sidecar([python_server(name="local")]) as running,
        Client(running.url, mode="legacy") as client,
    ):
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("local__nope", {})
        assert unknown.value.code == types.INVALID_PARAMS
        assert "Unknown tool: local__nope" in unknown.value.message
        # The upstream's own error result comes back as it was (here: invalid arguments).
        bad = await client.call_tool("local__add", {"a": "not a number", "b": 1})
        assert bad.is_error
        assert "a" in text(bad)
        assert (await client.call_tool("local__echo", {"text": "still here"})).structured_content == {
            "result": "still here"
        }


async def test_a_call_that_outlives_call_timeout_is_an_error_result(
    python_server: Callable[..., ServerConfig],
) -> None:
    async with (
        sidecar([python_server(name="slow", call_timeout=0.3)]) as running,
        Client(running.url, mode="legacy") as client,
    ):
        with anyio.fail_after(10):  # bounded by the server's call_timeout, not by the sleep
            result = await client.call_tool("slow__sleep", {"seconds": 30})
        assert result.is_error
        assert "'slow'" in text(result) and "no answer within 0.3s" in text(result)
        assert (await client.call_tool("slow__echo", {"text": "next"})).structured_content == {
            "result": "next"
        }


async def test_filters_apply_to_listing_and_calling(python_server: Callable[..., ServerConfig]) -> None:
    local = python_server(name="local", gateway={"include": ["echo", "add", "sleep"], "exclude": ["sl*"]})
    async with sidecar([local]) as running, Client(running.url, mode="2026-07-28") as client:
        assert names(await client.list_tools()) == ["local__echo", "local__add"]
        with pytest.raises(MCPError) as hidden:
            await client.call_tool("local__pid", {})  # not included: as unknown as a tool that never was
        assert hidden.value.code == types.INVALID_PARAMS


async def test_prefixes_collisions_and_sanitised_names(python_server: Callable[..., ServerConfig]) -> None:
    servers = [
        python_server("--alias", "get item", name="first", gateway={"prefix": ""}),
        python_server("--alias", "get_item", name="second", gateway={"prefix": ""}),
        python_server(name="third", gateway={"prefix": "t."}),
    ]
    async with sidecar(servers) as running, Client(running.url, mode="legacy") as client:
        shown = names(await client.list_tools())
        assert shown == [*BEHAVING_TOOLS, "get_item", *(f"t.{t}" for t in BEHAVING_TOOLS)]
        # "get item" was made valid and won; "get_item" of the second server lost to it.
        collisions = running.gateway.report()["collisions"]
        assert {
            "kind": "tool",
            "exposed": "get_item",
            "winner": "first",
            "loser": "second",
            "name": "get_item",
        } in (collisions)
        assert {
            "kind": "tool",
            "exposed": "echo",
            "winner": "first",
            "loser": "second",
            "name": "echo",
        } in collisions
        assert (await client.call_tool("get_item", {"text": "x"})).structured_content == {"result": "x"}
        served = await client.call_tool("pid", {})
        assert served.structured_content == {"result": running.manager.status("first").pid}
        assert (await client.call_tool("t.add", {"a": 1, "b": 2})).structured_content == {"result": 3}


async def test_reserved_meta_never_reaches_a_server(python_server: Callable[..., ServerConfig]) -> None:
    async with (
        sidecar([python_server("--meta-tool", name="local")]) as running,
        Client(running.url, mode="2026-07-28") as client,
    ):
        result = await client.call_tool(
            "local__meta", {}, meta={"vendor/key": "kept", "progressToken": "mine"}
        )
        assert result.structured_content is not None
        seen = result.structured_content["meta"]
        assert seen.get("vendor/key") == "kept"  # the caller's own keys pass through
        assert not [key for key in seen if key.startswith("io.modelcontextprotocol/") and key not in (
            "io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientInfo",
            "io.modelcontextprotocol/clientCapabilities",
        )]  # fmt: skip
        # What reserved keys it did get are the sidecar's own client's, not the caller's.
        assert seen.get("io.modelcontextprotocol/clientInfo", {}).get("name") in (None, "mcp-sidecar")
        assert seen.get("progressToken") != "mine"


async def test_failover_under_load_from_several_clients(
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    http_server: HttpServer,
    wait_until: Wait,
) -> None:
    """stdio and HTTP upstreams killed in the middle of a stream of calls from three clients:
    the other server's calls are unaffected, the dead one's fail at once with an error result,
    its tools leave every list, every client is told, and all comes back after recovery."""
    service = await http_server("streamable-http")
    upstreams = [
        python_server(name="local", reconnect={"initial_backoff": 0.2, "max_backoff": 0.2}),
        server_config("remote", "streamable-http", url=service.url),
    ]
    heard = [Heard(), Heard(), Heard()]
    async with (
        sidecar(upstreams) as running,
        Client(running.url, mode="legacy", message_handler=heard[0]) as first,
        Client(running.url, mode="legacy", message_handler=heard[1]) as second,
        Client(running.url, mode="2026-07-28") as third,
        anyio.create_task_group() as tg,
    ):
        await tg.start(listen, third, heard[2])
        clients = (first, second, third)
        log: list[tuple[str, bool, float]] = []  # (server, ok, seconds) of every call

        async def calls(client: Client) -> None:
            while True:
                for server in ("local", "remote"):
                    started = anyio.current_time()
                    result = await client.call_tool(f"{server}__add", {"a": 1, "b": 1})
                    ok = not result.is_error and result.structured_content == {"result": 2}
                    if not ok:
                        assert server in text(result), text(result)  # the error names the server
                    log.append((server, ok, anyio.current_time() - started))
                await anyio.lowlevel.checkpoint()

        for client in clients:
            tg.start_soon(calls, client)

        async def outage(
            server: str, kill: Callable[[], None], restart: Callable[[], Awaitable[None]]
        ) -> None:
            for h in heard:
                h.tools_changed = 0
            await wait_until(lambda: len(log) > 30, 20, "calls flowing")
            mark = len(log)
            kill()
            await wait_until(lambda: not running.manager.status(server).active, 10, f"{server} noticed down")
            for client in clients:
                assert not [n for n in names(await client.list_tools()) if n.startswith(f"{server}__")]
            await wait_until(lambda: all(h.tools_changed for h in heard), 10, "every client told")
            await wait_until(
                lambda: len([e for e in log[mark:] if e[0] == server and not e[1]]) >= 6, 10, "failures"
            )
            failed = [entry for entry in log[mark:] if entry[0] == server and not entry[1]]
            assert (
                max(seconds for _, _, seconds in failed[-3:]) < 10.0
            )  # at once, not after the 60 s call timeout
            other = "remote" if server == "local" else "local"
            assert all(ok for name, ok, _ in log[mark:] if name == other), "the other server's calls failed"
            for h in heard:
                h.tools_changed = 0
            await restart()
            await wait_until(lambda: running.manager.status(server).active, 20, f"{server} back")
            await wait_until(lambda: all(h.tools_changed for h in heard), 10, "every client told again")
            for client in clients:
                assert f"{server}__add" in names(await client.list_tools())
            back = len(log)
            await wait_until(
                lambda: any(e[0] == server and e[1] for e in log[back:]), 10, "calls succeed again"
            )

        local_pid = running.manager.status("local").pid
        assert local_pid is not None

        async def nothing() -> None:
            return None

        await outage(
            "local", lambda: os.kill(local_pid, signal.SIGKILL), nothing
        )  # the supervisor respawns it
        await outage("remote", service.kill, service.start)  # type: ignore[arg-type]
        tg.cancel_scope.cancel()  # the callers and the listen stream


async def test_bad_http_requests(
    python_server: Callable[..., ServerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_TEST_TOKEN", "gateway-secret-token")
    async with sidecar(
        [python_server("--meta-tool", name="local")],
        token_env="GW_TEST_TOKEN",
        max_body_bytes=4096,
        allowed_origins=("https://app.example.com",),
    ) as running:
        good = {"Authorization": "Bearer gateway-secret-token"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx2.AsyncClient(timeout=10) as http:

            async def post(headers: dict[str, str], content: bytes | None = None) -> httpx2.Response:
                data = json.dumps(body).encode() if content is None else content
                return await http.post(running.url, headers={**accept, **headers}, content=data)

            assert (await post({})).status_code == 401
            assert (await post({"Authorization": "Bearer wrong"})).status_code == 401
            assert (await post({"Authorization": "Basic gateway-secret-token"})).status_code == 401
            assert (await post({**good, "Origin": "https://evil.example.com"})).status_code == 403
            assert (await post({**good, "Host": "evil.example.com"})).status_code == 403
            assert (await post({**good, "Host": "rebound.example.com:80"})).status_code == 403
            assert (await post({**good, "Origin": "null"})).status_code == 403
            malformed = await post(good, b'{"jsonrpc": "2.0", "id": 1, "method": ')
            assert malformed.status_code == 400
            assert malformed.json()["error"]["code"] == types.PARSE_ERROR
            huge = await post(good, b'{"x": "' + b"a" * 10_000 + b'"}')
            assert huge.status_code == 413
            wrong_path = await http.post(running.url + "/other", headers={**accept, **good}, content=b"{}")
            assert wrong_path.status_code == 404
            # Allowed: the configured origin, and no origin at all (not a browser).
            allowed = await post(
                {**good, "Origin": "https://app.example.com"},
                json.dumps({**body, "method": "tools/list"}).encode(),
            )
            assert allowed.status_code != 403
        transport = streamable_http_client(running.url, http_client=httpx2.AsyncClient(headers=good))
        async with Client(transport, mode="legacy") as client:
            result = await client.call_tool("local__meta", {})
        # The gateway's token is never forwarded: stdio has no headers, and the meta has no trace of it.
        assert "gateway-secret-token" not in json.dumps(result.model_dump(mode="json"))


async def test_the_session_count_is_bounded(python_server: Callable[..., ServerConfig]) -> None:
    async with (
        sidecar([python_server(name="local")], max_sessions=2) as running,
        Client(running.url, mode="legacy"),
        Client(running.url, mode="legacy"),
    ):
        with pytest.raises(Exception) as refused:  # the SDK client raises its transport's failure
            async with Client(running.url, mode="legacy"):
                pass
        assert "Too many open sessions" in repr(refused.value)
        async with Client(running.url, mode="2026-07-28") as modern:  # stateless: not a session
            assert "local__echo" in names(await modern.list_tools())


async def test_gateway_series(python_server: Callable[..., ServerConfig], wait_until: Wait) -> None:
    async with sidecar([python_server(name="local")]) as running:
        collector = GatewayCollector(running.gateway)
        heard = Heard()
        async with Client(running.url, mode="legacy", message_handler=heard) as client:
            await client.call_tool("local__echo", {"text": "x"})
            samples = {
                (s.name, tuple(s.labels.items())): s.value for m in collector.collect() for s in m.samples
            }
            assert samples[("mcp_gateway_sessions", (("era", "legacy"),))] == 1
            assert samples[("mcp_gateway_tools_exposed", (("server", "local"),))] == 4
            before = samples[("mcp_gateway_list_changed_sent_total", ())]
            await running.manager.drop(["local"])
            await wait_until(lambda: heard.tools_changed > 0, 10, "list_changed")
            samples = {
                (s.name, tuple(s.labels.items())): s.value for m in collector.collect() for s in m.samples
            }
            assert samples[("mcp_gateway_tools_exposed", (("server", "local"),))] == 0
            assert samples[("mcp_gateway_list_changed_sent_total", ())] > before
            dropped = await client.call_tool("local__echo", {"text": "x"})
        assert dropped.is_error
        assert "server 'local' is dropped" in text(dropped)


async def test_no_notification_when_nothing_visible_changed(
    python_server: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    servers = [python_server(name="shown"), python_server(name="hidden", gateway={"enabled": False})]
    heard = Heard()
    async with (
        sidecar(servers) as running,
        Client(running.url, mode="legacy", message_handler=heard) as client,
    ):
        await running.manager.drop(["hidden"])  # supervised, never exposed: nothing a client sees
        await running.manager.drop(["shown"])
        await wait_until(lambda: heard.tools_changed > 0, 10, "list_changed for the shown server")
        assert heard.tools_changed == 1  # one notification for the change clients can see
        assert names(await client.list_tools()) == []


async def test_leaving_ends_open_sessions_and_listen_streams_promptly(
    python_server: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    """Clients holding an SSE stream (legacy) and a listen stream (2026) do not hold the
    gateway up: leaving it takes its own stop budget, however many streams are open."""
    config = SidecarConfig(
        sidecar=SidecarSettings(listen="127.0.0.1:0", gateway=GatewayConfig(listen="127.0.0.1:0")),
        servers=(python_server(name="local"),),
    )
    manager = MCPServerManager(config)
    gateway = build_gateway(manager, config)
    assert gateway is not None

    async def hold(url: str, mode: str) -> None:
        with suppress(Exception):  # the gateway goes away under it: that is the point
            async with Client(url, mode=mode) as client:
                if mode == "legacy":
                    await anyio.sleep_forever()
                await listen(client, Heard())

    async with manager, anyio.create_task_group() as clients:
        async with serve_gateway(gateway, config) as port:
            url = f"http://127.0.0.1:{port}/mcp"
            clients.start_soon(hold, url, "legacy")
            clients.start_soon(hold, url, "2026-07-28")
            await wait_until(
                lambda: gateway.sessions() == {"legacy": 1, "2026-07-28": 1}, 15, "both clients in"
            )
            started = anyio.current_time()
        stopped = anyio.current_time() - started
        clients.cancel_scope.cancel()
    assert stopped < _STOP_TIMEOUT + 4, f"the gateway took {stopped:.2f}s to stop"  # a hang never stops
    assert gateway.sessions() == {"legacy": 0, "2026-07-28": 0}


async def test_sessions_are_forgotten_when_their_clients_leave(
    python_server: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    """Trap 2: the SDK has no "every session" call, so the gateway collects initialize-era
    sessions itself (a private SDK attribute, with mcp pinned to 2.3.x) and learns of their end
    from the connection's exit stack. If the SDK changes either, this fails."""
    async with sidecar([python_server(name="local")]) as running:
        async with Client(running.url, mode="legacy"), Client(running.url, mode="legacy"):
            await wait_until(lambda: running.gateway.sessions()["legacy"] == 2, 10, "both sessions known")
        await wait_until(lambda: running.gateway.sessions()["legacy"] == 0, 10, "both sessions forgotten")
        heard = Heard()
        async with Client(running.url, mode="legacy", message_handler=heard):
            await running.manager.drop(["local"])
            await wait_until(lambda: heard.tools_changed == 1, 10, "the one open session told")
        # Notifications are sent in order, tools last: all of them have arrived. Nothing went to
        # the sessions that had left.
        changed = (types.ToolListChangedNotification, types.PromptListChangedNotification)
        told = [m for m in heard.messages if isinstance(m, (*changed, types.ResourceListChangedNotification))]
        assert running.gateway.list_changed_sent == len(told) >= 1


async def test_a_cancelled_call_is_cancelled_upstream_too(
    python_server: Callable[..., ServerConfig], watch: Callable[[MCPServerManager], EventLog]
) -> None:
    """A client that gives up on a call (its read timeout sends notifications/cancelled) ends the
    gateway's call to the server, which the SDK cancels in turn: the call is over long before
    the tool would have answered."""
    async with (
        sidecar([python_server(name="local")]) as running,
        Client(running.url, mode="legacy") as client,
    ):
        events = watch(running.manager)
        with anyio.fail_after(10), pytest.raises(MCPError):
            await client.call_tool("local__sleep", {"seconds": 60}, read_timeout_seconds=0.5)
        called = await events.wait_for(lambda e: isinstance(e, ToolCalled), timeout=10)
        assert (called.tool, called.error_type) == ("sleep", "cancelled")  # type: ignore[attr-defined]
        assert (await client.call_tool("local__echo", {"text": "after"})).structured_content == {
            "result": "after"
        }


async def test_enabled_false_turns_the_gateway_off(python_server: Callable[..., ServerConfig]) -> None:
    settings = SidecarSettings(gateway=GatewayConfig(enabled=False))
    config = SidecarConfig(sidecar=settings, servers=(python_server(name="local"),))
    assert build_gateway(MCPServerManager(config), config) is None
    async with serve_gateway(None, config) as port:
        assert port is None


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_a_server_changing_its_lists_tells_every_client(
    python_server: Callable[..., ServerConfig], wait_until: Wait, protocol: str
) -> None:
    """A server adds a tool and a prompt at run time (announced in its own era); the core
    re-lists, and every gateway client, of either era, is told and sees the new names."""
    heard, listening = Heard(), Heard()
    async with (
        # The core waits `health.timeout` for the listen stream's acknowledgment: FAST's 0.5 s is
        # too short on a busy machine, and a server without its stream is heard by nobody.
        sidecar(
            [python_server("--dynamic", name="dyn", protocol=protocol, health={"timeout": 5})]
        ) as running,
        Client(running.url, mode="legacy", message_handler=heard) as legacy,
        Client(running.url, mode="2026-07-28") as modern,
        anyio.create_task_group() as tg,
    ):
        await tg.start(listen, modern, listening)
        await legacy.call_tool("dyn__add_tool", {"name": "fresh"})
        await wait_until(lambda: heard.tools_changed and listening.tools_changed, 10, "both clients told")
        for client in (legacy, modern):
            assert "dyn__fresh" in names(await client.list_tools(cache_mode="refresh"))
        assert (await modern.call_tool("dyn__fresh", {})).structured_content == {"result": "fresh"}
        await legacy.call_tool("dyn__add_prompt", {"name": "hello"})
        await wait_until(
            lambda: any(isinstance(m, types.PromptListChangedNotification) for m in heard.messages),
            10,
            "prompts",
        )
        assert "dyn__hello" in [p.name for p in (await legacy.list_prompts()).prompts]
        tg.cancel_scope.cancel()


async def test_the_gateways_own_error_results_count_as_tool_errors(
    python_server: Callable[..., ServerConfig],
) -> None:
    """An error result the gateway makes itself (here: the upstream call timed out) is a
    `tool_error` in `mcp.server.operation.duration`, like one the upstream sent."""
    from prometheus_client.parser import text_string_to_metric_families

    slow = python_server(name="slow", call_timeout=0.5)
    settings = SidecarSettings(listen="127.0.0.1:0", gateway=GatewayConfig(listen="127.0.0.1:0"))
    config = SidecarConfig(sidecar=settings, servers=(slow,))
    manager = MCPServerManager(config)
    metrics = SidecarMetrics(manager.statuses)
    built = build_gateway(manager, config, metrics)
    assert built is not None
    async with (
        serve_gateway(built, config) as port,
        manager,
        Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client,
    ):
        result = await client.call_tool("slow__sleep", {"seconds": 30})
    assert result.is_error and "failed on server 'slow'" in str(result.content), result
    families = text_string_to_metric_families(metrics.render()[0].decode())
    counted = [
        sample.labels
        for family in families
        for sample in family.samples
        if sample.name == "mcp_server_operation_duration_seconds_count"
        and sample.labels.get("mcp_method_name") == "tools/call"
    ]
    assert [labels.get("error_type") for labels in counted] == ["tool_error"], counted
