"""The event bus: fan-out, bounded non-blocking buffers, shutdown draining; frozen typed events."""

from __future__ import annotations

import dataclasses
import io

import anyio
import pytest

from sidecar.events import (
    Connected,
    ConnectFailed,
    Connecting,
    Dropped,
    EventBus,
    GaveUp,
    HealthCheckFailed,
    HealthCheckPassed,
    LifecycleEvent,
    Lost,
    PromptsChanged,
    ReconnectAttempt,
    ReconnectScheduled,
    ResourcesChanged,
    Stopped,
    Subscription,
    ToolsChanged,
)
from sidecar.state import ServerState

S = ServerState
COMMON = {"server": "time", "transport": "stdio", "criticality": "optional"}


def event(n: int, state: ServerState = S.ACTIVE, previous: ServerState = S.ACTIVE) -> HealthCheckPassed:
    return HealthCheckPassed(**COMMON, state=state, previous=previous, ts=float(n), duration=0.001)


def drain(subscription: Subscription) -> list[LifecycleEvent]:
    received: list[LifecycleEvent] = []
    while True:
        try:
            received.append(subscription.receive_nowait())
        except anyio.WouldBlock:
            return received


def test_fan_out_to_two_subscriptions_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    events = [event(n) for n in range(5)]
    for e in events:
        bus.publish(e)
    assert drain(first) == events
    assert drain(second) == events
    assert first.dropped == second.dropped == 0


def test_publish_without_subscribers_is_a_no_op() -> None:
    EventBus().publish(event(0))


def test_bounded_buffer_drops_and_counts_instead_of_blocking() -> None:
    bus = EventBus()
    slow = bus.subscribe(max_buffer=2)
    fast = bus.subscribe(max_buffer=100)
    events = [event(n) for n in range(7)]
    for e in events:
        bus.publish(e)  # synchronous: returns at once even though `slow` is full
    assert slow.dropped == 5
    assert drain(slow) == events[:2]  # the oldest are kept; later ones are lost
    assert fast.dropped == 0
    assert drain(fast) == events  # a slow subscriber does not cost the others anything

    # Once drained there is room again, and the drop count keeps its history.
    bus.publish(event(99))
    assert drain(slow) == [event(99)]
    assert slow.dropped == 5


def test_zero_buffer_drops_when_nobody_is_waiting() -> None:
    bus = EventBus()
    subscription = bus.subscribe(max_buffer=0)
    bus.publish(event(0))
    assert subscription.dropped == 1
    assert drain(subscription) == []


@pytest.mark.anyio
async def test_closed_bus_ends_subscriptions_after_draining() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    events = [event(n) for n in range(3)]
    for e in events:
        bus.publish(e)
    bus.close()
    bus.publish(event(42))  # after close: delivered to nobody

    with anyio.fail_after(1):
        assert [e async for e in first] == events
        for e in events:
            assert await second.receive() == e
        with pytest.raises(anyio.EndOfStream):
            await second.receive()


@pytest.mark.anyio
async def test_subscribe_after_close_ends_at_once() -> None:
    bus = EventBus()
    bus.close()
    late = bus.subscribe()
    bus.publish(event(0))
    with anyio.fail_after(1):
        assert [e async for e in late] == []
    with pytest.raises(anyio.EndOfStream):
        late.receive_nowait()


@pytest.mark.anyio
async def test_waiting_reader_wakes_on_publish_and_on_close() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    received: list[LifecycleEvent] = []
    reading, got_two, ended = anyio.Event(), anyio.Event(), anyio.Event()

    async def read() -> None:
        reading.set()  # does not yield: the reader goes on to block on the empty stream
        async for e in subscription:
            received.append(e)
            if len(received) == 2:
                got_two.set()
        ended.set()

    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await reading.wait()
            bus.publish(event(1))
            bus.publish(event(2))
            await got_two.wait()
            assert not ended.is_set()
            bus.close()  # ends the reader's loop; the task group can exit
            await ended.wait()
    assert received == [event(1), event(2)]


def test_closed_subscription_gets_nothing() -> None:
    bus = EventBus()
    gone, kept = bus.subscribe(), bus.subscribe()
    bus.publish(event(0))
    gone.close()
    bus.publish(event(1))  # must not raise for the closed subscriber
    assert gone.dropped == 0
    with pytest.raises(anyio.ClosedResourceError):
        gone.receive_nowait()
    assert drain(kept) == [event(0), event(1)]
    gone.close()  # closing twice is harmless
    bus.close()  # and so is closing the bus after a subscriber left


def test_subscription_as_context_manager_closes() -> None:
    bus = EventBus()
    with bus.subscribe() as subscription:
        bus.publish(event(0))
        assert drain(subscription) == [event(0)]
    bus.publish(event(1))
    with pytest.raises(anyio.ClosedResourceError):
        subscription.receive_nowait()


@pytest.mark.parametrize(
    ("state", "previous", "transition"),
    [
        (S.ACTIVE, S.ACTIVE, False),
        (S.ACTIVE, S.CONNECTING, True),
        (S.RECONNECTING, S.ACTIVE, True),
        (S.FAILED, S.FAILED, False),
        (S.STOPPED, S.DROPPED, True),
    ],
)
def test_transition_property(state: ServerState, previous: ServerState, transition: bool) -> None:
    assert event(0, state=state, previous=previous).transition is transition


EXAMPLES: list[LifecycleEvent] = [
    Connecting(**COMMON, state=S.CONNECTING, previous=S.CONNECTING, ts=1.0),
    ReconnectAttempt(**COMMON, state=S.RECONNECTING, previous=S.RECONNECTING, ts=1.0, attempt=2),
    Connected(
        **COMMON,
        state=S.ACTIVE,
        previous=S.CONNECTING,
        ts=1.0,
        attempt=1,
        duration=0.2,
        protocol_version="2025-06-18",
        server_name="time",
        server_version="1.0",
        tools=("get_time",),
    ),
    ConnectFailed(
        **COMMON,
        state=S.RECONNECTING,
        previous=S.CONNECTING,
        ts=1.0,
        attempt=1,
        duration=0.1,
        error="boom",
        error_type="spawn_error",
    ),
    HealthCheckPassed(**COMMON, state=S.ACTIVE, previous=S.ACTIVE, ts=1.0, duration=0.01),
    HealthCheckFailed(
        **COMMON,
        state=S.ACTIVE,
        previous=S.ACTIVE,
        ts=1.0,
        duration=5.0,
        error="slow",
        error_type="probe_timeout",
        consecutive_failures=1,
    ),
    Lost(
        **COMMON,
        state=S.RECONNECTING,
        previous=S.ACTIVE,
        ts=1.0,
        reason="exited",
        error="x",
        connected_for=3.0,
    ),
    ReconnectScheduled(**COMMON, state=S.RECONNECTING, previous=S.RECONNECTING, ts=1.0, attempt=3, delay=4.0),
    GaveUp(**COMMON, state=S.FAILED, previous=S.RECONNECTING, ts=1.0, attempts=5, error=None),
    Dropped(**COMMON, state=S.DROPPED, previous=S.FAILED, ts=1.0, reason="policy"),
    Stopped(**COMMON, state=S.STOPPED, previous=S.ACTIVE, ts=1.0),
    ToolsChanged(**COMMON, state=S.ACTIVE, previous=S.ACTIVE, ts=1.0, tools=("a", "b")),
    PromptsChanged(**COMMON, state=S.ACTIVE, previous=S.ACTIVE, ts=1.0, prompts=("greet",)),
    ResourcesChanged(
        **COMMON,
        state=S.ACTIVE,
        previous=S.ACTIVE,
        ts=1.0,
        resources=("file:///a",),
        resource_templates=("file:///{path}",),
    ),
]


@pytest.mark.parametrize("e", EXAMPLES, ids=lambda e: type(e).__name__)
def test_events_are_frozen(e: LifecycleEvent) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.state = S.STOPPED  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.ts = 2.0  # type: ignore[misc]
    assert e == dataclasses.replace(e)
    hash(e)  # usable as a key


def test_event_kinds_are_distinct_class_constants() -> None:
    kinds = [type(e).kind for e in EXAMPLES]
    assert len(set(kinds)) == len(EXAMPLES)
    assert "event" not in kinds
    assert all("kind" not in {f.name for f in dataclasses.fields(e)} for e in EXAMPLES)


def test_events_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Stopped("time", "stdio", "optional", S.STOPPED, S.ACTIVE, 1.0)  # type: ignore[misc]


def test_every_view_takes_every_event() -> None:
    """Metrics, log lines and spans are fed every kind of event, new kinds included, without failing."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sidecar.state import ServerStatus
    from sidecar.telemetry.conventions import ClientConventions
    from sidecar.telemetry.logs import LogWriter, format_json, format_text
    from sidecar.telemetry.metrics import SidecarMetrics
    from sidecar.telemetry.tracing import LifecycleTracer

    status = ServerStatus(name="time", transport="stdio", criticality="optional", state=S.ACTIVE, since=1.0)
    metrics = SidecarMetrics(lambda: [status])
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = LifecycleTracer(provider)
    lines = io.StringIO()
    writers = [LogWriter(format_json, lines), LogWriter(format_text, lines)]
    conventions = ClientConventions()
    for e in EXAMPLES:
        metrics.observe(e)
        tracer.observe(e)
        if isinstance(e, ToolsChanged | PromptsChanged | ResourcesChanged):
            assert conventions.observe(e) == ()  # no request of ours, no session's end
        else:
            conventions.observe(e)
        for writer in writers:
            writer.write(e)
    body, _ = metrics.render(False)
    assert b"mcp_server_up" in body
    written = lines.getvalue()
    assert '"event":"prompts_changed"' in written and '"prompts":["greet"]' in written
    assert '"event":"resources_changed"' in written and '"resource_templates":["file:///{path}"]' in written
    assert exporter.get_finished_spans()  # the tracer still made its spans
