"""What an initialize-era gateway client asks of a 2026-07-28 server, translated to that era.

That era has no `resources/subscribe` (a subscription is a `subscriptions/listen` stream
naming the URIs) and sends log lines only to requests that opt in (`_meta`
`io.modelcontextprotocol/logLevel`). Upstream: behaving.py `--dynamic` over stdio, pinned to
2026-07-28; its `touch` tool announces a resource update, `say` logs during the call, and
`open_streams` counts the listen streams it serves.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp_types import LOG_LEVEL_META_KEY

from sidecar.config import ServerConfig

from .test_gateway import sidecar

# The client's resources/subscribe is deprecated for 2026-07-28 sessions; ours is initialize-era.
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

Wait = Callable[..., Awaitable[None]]
README = "mcp-sidecar://dyn/behaving://readme"  # behaving://readme of server dyn, as the gateway shows it
# The core waits `health.timeout` for its listen stream's acknowledgment: FAST's 0.5 s is short
# on a busy machine. Reconnects are quick, for the restart below.
MODERN = {"protocol": "2026-07-28", "health": {"timeout": 5}}


class Told:
    """What an initialize-era client was told: resource updates and log lines."""

    def __init__(self) -> None:
        self.updated: list[str] = []
        self.logs: list[types.LoggingMessageNotificationParams] = []

    async def message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updated.append(str(message.params.uri))

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    def client(self, url: str) -> Client:
        return Client(url, mode="legacy", message_handler=self.message, logging_callback=self.log)


async def _result(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(f"dyn__{tool}", arguments)
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content["result"]


async def _meta_seen(client: Client) -> dict[str, Any]:
    """The `_meta` the server got with a call (behaving.py's `meta` tool)."""
    result = await client.call_tool("dyn__meta", {})
    assert result.structured_content is not None, result
    return result.structured_content["meta"]


async def _streams_become(client: Client, count: int, timeout: float = 10) -> None:
    """Wait until the server serves `count` listen streams (a stream ends a moment after its cancel)."""
    with anyio.fail_after(timeout):
        while await _result(client, "open_streams") != count:
            await anyio.sleep(0.01)


async def test_resource_subscriptions_become_listen_streams_and_updates_come_back(
    python_server: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    told, other = Told(), Told()
    async with (
        sidecar([python_server("--dynamic", name="dyn", **MODERN)]) as running,
        told.client(running.url) as client,
        other.client(running.url) as bystander,
    ):
        assert running.manager.status("dyn").protocol_version == "2026-07-28"
        assert await _result(client, "open_streams") == 1  # the core's own, for list changes
        await client.session.subscribe_resource(README)  # -32601 upstream, were it passed on
        assert await _result(client, "open_streams") == 2  # the gateway's, for this URI
        await bystander.session.subscribe_resource(README)  # a second subscriber shares it
        assert await _result(client, "open_streams") == 2

        await _result(client, "touch", uri="behaving://other")  # nobody subscribed to that one
        await _result(client, "touch", uri="behaving://readme")
        await wait_until(lambda: told.updated and other.updated, 10, "both subscribers told")
        assert told.updated == other.updated == [README]  # the gateway's URI, once, the other not

        await bystander.session.unsubscribe_resource(README)
        assert await _result(client, "open_streams") == 2  # still one subscriber
        await _result(client, "touch", uri="behaving://readme")  # ... and the stream still carries updates
        await wait_until(lambda: len(told.updated) == 2, 30, "the remaining subscriber told")
        assert other.updated == [README]  # the one who left hears nothing more
        await client.session.unsubscribe_resource(README)
        await _streams_become(client, 1)  # the listen request cancelled: ended upstream too


async def test_a_subscription_outlives_a_restart_of_its_server(
    python_server: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    """Nothing is replayed on a re-opened listen stream: the subscriber is told the resource may
    have changed once the stream is back, and hears the updates after it."""
    told = Told()
    async with (
        sidecar([python_server("--dynamic", name="dyn", **MODERN)]) as running,
        told.client(running.url) as client,
    ):
        await client.session.subscribe_resource(README)
        pid = await _result(client, "pid")
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: not running.manager.status("dyn").active, 10, "the server seen dead")
        await wait_until(lambda: bool(told.updated), 30, "the subscriber told after the restart")
        assert told.updated == [README]
        assert await _result(client, "pid") != pid
        await _streams_become(client, 2)  # the core's and the gateway's, anew
        await _result(client, "touch", uri="behaving://readme")
        await wait_until(lambda: len(told.updated) == 2, 10, "an update after the restart")


async def test_a_listening_client_hears_the_resources_it_names(
    python_server: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    """A 2026-07-28 client subscribes by naming URIs in `subscriptions/listen`: the gateway holds
    a subscription upstream while the stream is open, and the stream carries the updates of the
    URIs it named, under the gateway's URIs, and no others. (An initialize-era upstream:
    test_gateway_everything.py.) A URI nobody serves is left out of the acknowledgment."""
    from mcp.shared.subscriptions import ResourceUpdated

    async with (
        sidecar([python_server("--dynamic", name="dyn", **MODERN)]) as running,
        Client(running.url, mode="2026-07-28") as client,
    ):
        await wait_until(lambda: running.manager.status("dyn").active, 30, "dyn active")
        async with client.listen(resource_subscriptions=[README, "mcp-sidecar://nobody/x://y"]) as stream:
            assert stream.honored.resource_subscriptions == [README]
            await _streams_become(client, 2, 30)  # the core's (opened once active), and one for README
            await _result(client, "touch", uri="behaving://other")  # not named: never on the stream
            await _result(client, "touch", uri="behaving://readme")
            with anyio.fail_after(30):
                event = await stream.__anext__()
            assert event == ResourceUpdated(uri=README)
        await _streams_become(client, 1)  # the stream closed: the subscription ended upstream too


async def test_a_subscription_to_an_unknown_resource_is_refused_and_nothing_is_held(
    python_server: Callable[..., ServerConfig],
) -> None:
    from mcp.shared.exceptions import MCPError

    async with (
        sidecar([python_server("--dynamic", name="dyn", **MODERN)]) as running,
        Told().client(running.url) as client,
    ):
        with pytest.raises(MCPError) as refused:
            await client.session.subscribe_resource("mcp-sidecar://nobody/x://y")
        assert refused.value.code == -32002
        await _streams_become(client, 1, 30)  # the core's only (re-tried if its first ack came late)


async def test_log_lines_of_a_call_reach_the_caller_that_asked_for_them(
    python_server: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    """The gateway opts in upstream per call, at the level its caller asked for (logging/setLevel,
    or its own request's opt-in); a caller that asked nothing gets no lines and costs no opt-in."""
    told, silent = Told(), Told()
    async with (
        sidecar([python_server("--dynamic", "--meta-tool", name="dyn", **MODERN)]) as running,
        told.client(running.url) as client,
        silent.client(running.url) as quiet,
    ):
        assert LOG_LEVEL_META_KEY not in await _meta_seen(quiet)
        await _result(quiet, "say", level="error", text="unheard")

        await client.session.set_logging_level("info")
        assert (await _meta_seen(client))[LOG_LEVEL_META_KEY] == "info"
        await _result(client, "say", level="debug", text="below the level")
        await _result(client, "say", level="warning", text="heard")
        await wait_until(lambda: bool(told.logs), 10, "the log line")
        assert [(log.level, log.data) for log in told.logs] == [("warning", "heard")]
        assert told.logs[0].logger == "dyn"  # whose it is, when the server did not say
        assert silent.logs == []

        heard: list[types.LoggingMessageNotificationParams] = []

        async def hear(params: types.LoggingMessageNotificationParams) -> None:
            heard.append(params)

        modern_client = Client(running.url, mode="2026-07-28", log_level="warning", logging_callback=hear)
        async with modern_client as modern:
            assert (await _meta_seen(modern))[LOG_LEVEL_META_KEY] == "warning"  # the gateway's
            await _result(modern, "say", level="info", text="below")
            await _result(modern, "say", level="error", text="modern")
            await wait_until(lambda: bool(heard), 10, "the 2026-07-28 caller's log line")
            assert [(log.level, log.data) for log in heard] == [("error", "modern")]
