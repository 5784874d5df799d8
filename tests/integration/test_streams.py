"""Event streams, in both protocol eras: what a server offers and how it changes, and its death by the stream.

Initialize-era streamable HTTP: the standalone GET stream. 2026-07-28: a
`subscriptions/listen` stream (any transport). Servers are tests/servers/behaving.py
with `--dynamic` (tools that add tools, prompts and resources at run time and announce
it, and that count or end the server's open streams).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from sidecar import MCPServerManager, ServerConfig
from sidecar.events import LifecycleEvent, Lost, PromptsChanged, ResourcesChanged, ToolsChanged

if TYPE_CHECKING:
    from conftest import EventLog, Service

pytestmark = pytest.mark.anyio

Watch = Callable[[MCPServerManager], "EventLog"]
IsEvent = Callable[..., Callable[..., bool]]
HttpServer = Callable[..., Awaitable["Service"]]

# `mode` of the client, and the version each must end up with.
ERAS = [
    pytest.param("legacy", "2025-11-25", id="initialize-era"),
    pytest.param("auto", "2026-07-28", id="2026-07-28"),
]
# Probes this far apart cannot be what notices a death within the tests' deadlines. The timeout
# also bounds the listen acknowledgment and the probe sent when a stream ends: generous, for a
# busy machine (a slow answer is not what these tests are about).
NO_PROBES = {"interval": 60, "timeout": 2.0}
DEADLINE = 5.0  # generous: the benchmark measures the real latency (benchmarks/bench_http_death.py)


async def _start(
    transport: str,
    protocol: str,
    http_server: HttpServer,
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
) -> ServerConfig:
    """behaving.py --dynamic over `transport`, with probes too far apart to matter."""
    if transport == "stdio":
        return python_server("--dynamic", name="s", protocol=protocol, health=NO_PROBES)
    service = await http_server("streamable-http", "--dynamic")
    return server_config("s", "streamable-http", url=service.url, protocol=protocol, health=NO_PROBES)


async def _result(manager: MCPServerManager, tool: str, **arguments: Any) -> Any:
    result = await manager.call_tool("s", tool, arguments)
    assert not result.is_error, result
    return result.structured_content["result"]  # type: ignore[index]


async def _wait_for_open_stream(manager: MCPServerManager, timeout: float = DEADLINE) -> None:
    """Until the server says it serves one of our streams (the SDK opens a GET stream on its own time)."""
    with anyio.move_on_after(timeout):
        while await _result(manager, "open_streams") < 1:
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"no event stream open on the server within {timeout:g}s")


def _of_kind(events: list[LifecycleEvent], kinds: tuple[str, ...]) -> list[LifecycleEvent]:
    return [e for e in events if e.server == "s" and e.kind in kinds]


@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
@pytest.mark.parametrize(("protocol", "version"), ERAS)
async def test_offerings_are_listed_and_their_changes_followed(
    transport: str,
    protocol: str,
    version: str,
    http_server: HttpServer,
    python_server: Callable[..., ServerConfig],
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    config = await _start(transport, protocol, http_server, python_server, server_config)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        status = manager.status("s")
        assert status.active, status
        assert status.protocol_version == version
        offerings = status.offerings
        # Full objects, as the server described them, and the names derived from them.
        assert status.tools == tuple(tool.name for tool in offerings.tools)
        assert {"echo", "add_tool"} <= set(status.tools)
        assert offerings.tools[0].description == "Return the text unchanged."
        assert offerings.capabilities is not None and offerings.capabilities.prompts is not None
        assert [prompt.name for prompt in offerings.prompts] == ["greet"]
        assert [str(resource.uri) for resource in offerings.resources] == ["behaving://readme"]
        assert [template.uri_template for template in offerings.resource_templates] == [
            "behaving://items/{item_id}"
        ]
        if transport != "stdio" or protocol != "legacy":  # initialize-era stdio needs no stream
            await _wait_for_open_stream(manager)

        for name in ("first_added", "second_added"):  # the second can only come through the stream
            mark = events.mark()
            await _result(manager, "add_tool", name=name)
            changed = await events.wait_for(is_event("s", "tools_changed"), timeout=DEADLINE, after=mark)
            assert isinstance(changed, ToolsChanged)
            assert changed.tools[-1] == name, changed
            status = manager.status("s")
            assert status.tools == changed.tools  # the status held them before the event went out
            assert status.offerings.tools[-1].description == f"Added at run time: {name}."
            assert [tool.name for tool in manager.tools()["s"]] == list(changed.tools)

        mark = events.mark()
        await _result(manager, "add_prompt", name="farewell")
        prompts = await events.wait_for(is_event("s", "prompts_changed"), timeout=DEADLINE, after=mark)
        assert isinstance(prompts, PromptsChanged)
        assert prompts.prompts == ("greet", "farewell")
        assert [p.name for p in manager.status("s").offerings.prompts] == ["greet", "farewell"]

        mark = events.mark()
        await _result(manager, "add_resource", name="news")
        resources = await events.wait_for(is_event("s", "resources_changed"), timeout=DEADLINE, after=mark)
        assert isinstance(resources, ResourcesChanged)
        assert resources.resources == ("behaving://readme", "behaving://added/news")
        assert resources.resource_templates == ("behaving://items/{item_id}",)
        assert [str(r.uri) for r in manager.status("s").offerings.resources] == list(resources.resources)
        # Each change was announced once and published once; nothing was lost on the way.
        assert len(_of_kind(events.drain(), ("tools_changed",))) == 2
        assert not _of_kind(events.drain(), ("lost", "health_check_failed"))


@pytest.mark.parametrize(("protocol", "version"), ERAS)
async def test_killed_http_server_leaves_active_through_its_event_stream(
    protocol: str,
    version: str,
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    """Probes 60 s apart: only the stream's end can tell within the deadline."""
    service = await http_server("streamable-http", "--dynamic")
    config = server_config("s", "streamable-http", url=service.url, protocol=protocol, health=NO_PROBES)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        assert manager.status("s").protocol_version == version
        await _wait_for_open_stream(manager)
        mark = events.mark()
        killed = time.monotonic()
        service.kill()
        lost = await events.wait_for(is_event("s", "lost"), timeout=DEADLINE, after=mark)
        assert time.monotonic() - killed < DEADLINE
        assert isinstance(lost, Lost)
        # The stream ended; the probe sent at once could not connect: the transport failed.
        assert lost.reason == "transport_error", lost
        assert "cannot connect" in lost.error, lost
        assert not manager.status("s").active
        assert not _of_kind(events.drain()[mark:], ("health_check_failed",))


@pytest.mark.parametrize(("protocol", "version"), ERAS)
async def test_a_stream_the_server_ends_cleanly_is_reopened_not_taken_as_a_loss(
    protocol: str,
    version: str,
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    service = await http_server("streamable-http", "--dynamic")
    config = server_config("s", "streamable-http", url=service.url, protocol=protocol, health=NO_PROBES)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        assert manager.status("s").protocol_version == version
        await _wait_for_open_stream(manager)
        mark = events.mark()
        assert await _result(manager, "end_streams") >= 1  # it did end ours
        await _wait_for_open_stream(manager)  # re-opened (initialize era: by the SDK, a second later)
        assert manager.status("s").active
        # Changes still arrive through the new stream ...
        await _result(manager, "add_tool", name="after_the_end")
        changed = await events.wait_for(is_event("s", "tools_changed"), timeout=DEADLINE, after=mark)
        assert isinstance(changed, ToolsChanged) and "after_the_end" in changed.tools
        # ... and its end still reveals a death.
        killed = time.monotonic()
        service.kill()
        lost = await events.wait_for(is_event("s", "lost"), timeout=DEADLINE, after=mark)
        assert time.monotonic() - killed < DEADLINE
        assert isinstance(lost, Lost) and lost.reason == "transport_error", lost
        before_kill = [e for e in events.drain()[mark:] if e.ts < lost.ts]
        assert not _of_kind(before_kill, ("lost", "health_check_failed", "connect_failed")), before_kill


@pytest.mark.parametrize(
    ("protocol", "flag"),
    [
        pytest.param("legacy", "--refuse-get-stream", id="initialize-era-GET-405"),
        pytest.param("auto", "--no-listen", id="2026-07-28-no-listen"),
    ],
)
async def test_a_server_without_a_stream_stays_active_and_is_watched_by_probes(
    protocol: str,
    flag: str,
    http_server: HttpServer,
    server_config: Callable[..., ServerConfig],
    watch: Watch,
    is_event: IsEvent,
) -> None:
    service = await http_server("streamable-http", "--dynamic", flag)
    probes = {"interval": 0.2, "timeout": 2.0}  # frequent, and patient with a busy machine
    config = server_config("s", "streamable-http", url=service.url, protocol=protocol, health=probes)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        assert manager.status("s").active
        # Refused (405, method not found) is not a failure: no loss, no reconnect, probes pass.
        await events.wait_for(is_event("s", "health_check_passed"), timeout=DEADLINE)
        quiet = await events.collect(1.0)
        assert not _of_kind(quiet, ("lost", "connect_failed", "reconnect_attempt")), quiet
        assert await _result(manager, "open_streams") == 0
        mark = events.mark()
        service.kill()
        lost = await events.wait_for(is_event("s", "lost"), timeout=DEADLINE, after=mark)
        assert isinstance(lost, Lost)


async def test_a_listen_acknowledged_late_at_connect_is_tried_again(
    python_server: Callable[..., ServerConfig], watch: Watch, is_event: IsEvent
) -> None:
    """A slow server, or a busy host: the first `subscriptions/listen` is answered after the
    acknowledgment's deadline. Given up at once, the server's changes went unheard for its whole
    session; tried again a second later, they arrive, and nothing was a loss."""
    health = {"interval": 60, "timeout": 1.0}  # the acknowledgment's deadline; probes out of the way
    config = python_server("--dynamic", "--late-first-listen", "3", name="s", protocol="auto", health=health)
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        assert manager.status("s").protocol_version == "2026-07-28"
        await _wait_for_open_stream(manager, 30)  # room for a retry that is late again (then 2 s on)
        mark = events.mark()
        await _result(manager, "add_tool", name="heard")
        changed = await events.wait_for(is_event("s", "tools_changed"), timeout=DEADLINE, after=mark)
        assert isinstance(changed, ToolsChanged) and "heard" in changed.tools
        assert manager.status("s").active
        assert not _of_kind(events.drain(), ("lost", "connect_failed", "reconnect_attempt"))


@pytest.mark.parametrize(("protocol", "version"), ERAS)
async def test_a_list_that_fails_at_connect_is_empty_not_a_connect_failure(
    protocol: str,
    version: str,
    python_server: Callable[..., ServerConfig],
    watch: Watch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = MCPServerManager([python_server("--fail-listing", name="s", protocol=protocol)])
    events = watch(manager)
    with caplog.at_level(logging.WARNING, logger="sidecar.supervisor"):
        async with manager:
            status = manager.status("s")
            assert status.active, status
            assert status.protocol_version == version
            assert "echo" in status.tools  # tools/list works
            assert status.offerings.prompts == ()
            assert status.offerings.resources == () and status.offerings.resource_templates == ()
            assert not _of_kind(events.drain(), ("connect_failed", "lost"))
    warnings = [r.getMessage() for r in caplog.records if r.name == "sidecar.supervisor"]
    assert len([w for w in warnings if "could not list prompts" in w]) == 1, warnings
    assert len([w for w in warnings if "could not list resources" in w]) == 1, warnings
    assert any("prompts/list is broken on purpose" in w for w in warnings), warnings
