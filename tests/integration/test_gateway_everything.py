"""What passes through the gateway besides calls, against the npm reference server-everything
(nobody here wrote it): sampling and elicitation asked of the calling client, progress, logs,
resources read and subscribed (URIs rewritten both ways), completion; and 2026-07-28
input-required rounds, against behaving.py's `ask` tool."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from sidecar.config import ServerConfig

from .test_gateway import Running, sidecar, text

pytestmark = pytest.mark.anyio

Wait = Callable[..., Awaitable[None]]
DOC = "demo://resource/static/document/architecture.md"


@asynccontextmanager
async def everything(
    everything_js: Path, server_config: Callable[..., ServerConfig], **gateway: Any
) -> AsyncIterator[Running]:
    config = server_config("every", command="node", args=[str(everything_js), "stdio"], gateway=gateway)
    async with sidecar([config]) as running:
        assert running.manager.status("every").active
        yield running


class Caller:
    """An initialize-era client's callbacks, answering as a person would, and what it was told."""

    def __init__(self) -> None:
        self.asked: list[Any] = []
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self.messages: list[Any] = []

    async def sampling(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.asked.append(params)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(text="forty-two"), model="m"
        )

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        return types.ElicitResult(action="accept", content={"reply": "blue"})

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def roots(self, context: Any) -> types.ListRootsResult:
        self.asked.append("roots/list")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async def message(self, message: Any) -> None:
        self.messages.append(message)

    def client(self, url: str, mode: str = "legacy", roots: bool = False) -> Client:
        return Client(
            url,
            mode=mode,
            sampling_callback=self.sampling,
            elicitation_callback=self.elicitation,
            list_roots_callback=self.roots if roots else None,
            logging_callback=self.log,
            message_handler=self.message,
        )


async def test_sampling_and_elicitation_are_asked_of_the_calling_client(
    everything_js: Path, server_config: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    caller = Caller()
    async with everything(everything_js, server_config) as running, caller.client(running.url) as client:
        # The server registers these only for a client that can sample and elicit: ours can, for
        # its callers. They appear after connect, through the same change path as everything.
        await wait_until(
            lambda: "every__trigger-sampling-request" in running.gateway.catalog().tools,
            10,
            "conditional tools",
        )
        sampled = await client.call_tool("every__trigger-sampling-request", {"prompt": "what is 6*7?"})
        assert not sampled.is_error and "forty-two" in text(sampled)
        assert "what is 6*7?" in str(caller.asked[0].messages[0].content)
        elicited = await client.call_tool("every__trigger-elicitation-request", {})
        assert not elicited.is_error
        assert "accept" in text(elicited) and len(caller.asked) == 2
        # A 2026-07-28 caller cannot be asked (that era has no server-to-client requests): the
        # server hears a clear refusal, and the call still returns.
        async with Caller().client(running.url, mode="2026-07-28") as modern:
            refused = await modern.call_tool("every__trigger-sampling-request", {"prompt": "x"})
        assert "cannot relay sampling/createMessage" in text(refused)


async def test_roots_are_asked_of_the_calling_client(
    everything_js: Path, server_config: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    """server-everything asks for roots during `get-roots-list` until it has them (its one session
    is the sidecar's): a caller without roots makes the gateway refuse; one with roots is asked."""
    caller = Caller()
    async with everything(everything_js, server_config) as running:
        # Registered only for a client that declares roots: the sidecar does, for its callers.
        await wait_until(lambda: "every__get-roots-list" in running.gateway.catalog().tools, 10, "the tool")
        async with Caller().client(running.url) as rootless:
            unknown = await rootless.call_tool("every__get-roots-list", {})
        assert "no roots are currently configured" in text(unknown)
        async with caller.client(running.url, roots=True) as client:
            listed = await client.call_tool("every__get-roots-list", {})
        assert caller.asked == ["roots/list"]
        assert not listed.is_error and "file:///work/project" in text(listed), text(listed)


async def test_progress_reaches_the_caller_in_both_eras(
    everything_js: Path, server_config: Callable[..., ServerConfig]
) -> None:
    async with everything(everything_js, server_config) as running:
        for mode in ("legacy", "2026-07-28"):
            seen: list[tuple[float, float | None]] = []

            async def progress(
                value: float, total: float | None, message: str | None, seen: list[Any] = seen
            ) -> None:
                seen.append((value, total))

            async with Client(running.url, mode=mode) as client:
                result = await client.call_tool(
                    "every__trigger-long-running-operation",
                    {"duration": 0.3, "steps": 3},
                    progress_callback=progress,
                )
            assert not result.is_error, text(result)
            assert seen == [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)], mode


async def test_logs_reach_clients_that_asked_for_them(
    everything_js: Path, server_config: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    caller = Caller()
    async with everything(everything_js, server_config) as running, caller.client(running.url) as client:
        await client.session.set_logging_level("debug")
        await client.call_tool("every__toggle-simulated-logging", {})  # one message at once, then every 5 s
        await wait_until(lambda: bool(caller.logs), 10, "a log message")
        assert caller.logs[0].logger == "every"  # whose it is, when the server did not say


async def test_resources_are_read_and_subscribed_through_rewritten_uris(
    everything_js: Path, server_config: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    caller = Caller()
    async with everything(everything_js, server_config) as running, caller.client(running.url) as client:
        exposed = f"mcp-sidecar://every/{DOC}"
        read = await client.read_resource(exposed)
        assert [content.uri for content in read.contents] == [exposed]  # the URI the client knows
        dynamic = await client.read_resource("mcp-sidecar://every/demo://resource/dynamic/text/3")
        assert "Resource 3" in dynamic.contents[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("mcp-sidecar://nobody/x://y")
        assert unknown.value.code == -32002
        completed = await client.complete(
            types.ResourceTemplateReference(
                uri="mcp-sidecar://every/demo://resource/dynamic/text/{resourceId}"
            ),
            {"name": "resourceId", "value": "7"},
        )
        assert completed.completion.values == ["7"]
        await client.session.subscribe_resource(exposed)
        await client.call_tool("every__toggle-subscriber-updates", {})  # one update at once, then every 5 s
        await wait_until(
            lambda: any(isinstance(m, types.ResourceUpdatedNotification) for m in caller.messages),
            10,
            "an update",
        )
        updates = {m.params.uri for m in caller.messages if isinstance(m, types.ResourceUpdatedNotification)}
        assert updates == {exposed}
        await client.session.unsubscribe_resource(exposed)


def _updates(caller: Caller) -> list[str]:
    return [str(m.params.uri) for m in caller.messages if isinstance(m, types.ResourceUpdatedNotification)]


async def test_a_subscription_outlives_a_restart_of_its_server(
    everything_js: Path, server_config: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    """server-everything forgets its subscriptions when it restarts. Once it is back, the gateway
    subscribes again and tells the subscriber the resource may have changed (nothing is
    replayed); the new process's updates then reach the subscriber."""
    caller = Caller()
    async with everything(everything_js, server_config) as running, caller.client(running.url) as client:
        exposed = f"mcp-sidecar://every/{DOC}"
        await client.session.subscribe_resource(exposed)
        pid = running.manager.status("every").pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        def back() -> bool:
            status = running.manager.status("every")
            return status.active and status.pid not in (None, pid)

        await wait_until(back, 30, "server-everything restarted and active")
        await wait_until(lambda: _updates(caller) == [exposed], 30, "the subscriber told after the restart")
        await client.call_tool("every__toggle-subscriber-updates", {})  # the new process, at once
        await wait_until(lambda: len(_updates(caller)) >= 2, 30, "an update from the new process")
        assert set(_updates(caller)) == {exposed}


async def test_a_listening_client_hears_the_resources_it_names(
    everything_js: Path, server_config: Callable[..., ServerConfig]
) -> None:
    """A 2026-07-28 client names URIs in `subscriptions/listen`; server-everything (initialize
    era) is subscribed with `resources/subscribe` meanwhile, and only updates its subscribers."""
    from mcp.shared.subscriptions import ResourceUpdated

    exposed = f"mcp-sidecar://every/{DOC}"
    async with (
        everything(everything_js, server_config) as running,
        Client(running.url, mode="2026-07-28") as client,
        client.listen(resource_subscriptions=[exposed]) as stream,
    ):
        assert stream.honored.resource_subscriptions == [exposed]
        await client.call_tool("every__toggle-subscriber-updates", {})  # at once, to its subscribers
        with anyio.fail_after(30):
            event = await stream.__anext__()
        assert event == ResourceUpdated(uri=exposed)


async def test_unprefixed_servers_keep_their_names_and_uris(
    everything_js: Path, server_config: Callable[..., ServerConfig]
) -> None:
    async with (
        everything(everything_js, server_config, prefix="") as running,
        Client(running.url, mode="legacy") as client,
    ):
        assert (await client.call_tool("get-sum", {"a": 1, "b": 2})).content
        read = await client.read_resource(DOC)
        assert read.contents[0].uri == DOC


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_input_required_rounds_reach_the_caller(
    python_server: Callable[..., ServerConfig], mode: str
) -> None:
    """A 2026-07-28 server that needs input: a 2026-07-28 caller gets the InputRequiredResult
    itself (its SDK answers and retries through the gateway); an initialize-era caller is asked
    by the gateway with an elicitation request, and the gateway retries for it."""
    server = python_server("--ask-tool", name="local", protocol="2026-07-28")
    caller = Caller()
    async with sidecar([server]) as running, caller.client(running.url, mode=mode) as client:
        result = await client.call_tool("local__ask", {"question": "colour?"})
    assert text(result) == "accept: blue (state asked)"
    assert [asked.message for asked in caller.asked] == ["colour?"]


async def test_prompts_are_listed_got_and_completed(
    everything_js: Path, server_config: Callable[..., ServerConfig]
) -> None:
    async with (
        everything(everything_js, server_config) as running,
        Client(running.url, mode="legacy") as client,
    ):
        names = [prompt.name for prompt in (await client.list_prompts()).prompts]
        assert {"every__simple-prompt", "every__args-prompt", "every__completable-prompt"} <= set(names)
        got = await client.get_prompt("every__args-prompt", {"city": "Paris"})
        assert "Paris" in str(got.messages[0].content)
        completed = await client.complete(
            types.PromptReference(name="every__completable-prompt"), {"name": "department", "value": "E"}
        )
        assert "Engineering" in completed.completion.values
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("every__no-such-prompt")
        assert unknown.value.code == types.INVALID_PARAMS


async def test_json_rpc_errors_of_a_server_pass_through_unchanged(
    everything_js: Path, server_config: Callable[..., ServerConfig], wait_until: Wait
) -> None:
    async with everything(everything_js, server_config) as running, Caller().client(running.url) as client:
        await wait_until(
            lambda: "every__trigger-url-elicitation" in running.gateway.catalog().tools,
            10,
            "conditional tools",
        )
        with pytest.raises(MCPError) as raised:
            await client.call_tool(
                "every__trigger-url-elicitation", {"url": "https://example.com/consent", "errorPath": True}
            )
        assert (
            raised.value.code == types.URL_ELICITATION_REQUIRED
        )  # -32042, with its data, as the server sent it
        assert raised.value.data is not None
