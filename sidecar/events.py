"""Typed lifecycle events and the bus that carries them to subscribers.

Events are the only way state leaves the core. Only a server's supervisor task
publishes its events, so each server's events arrive in order. Publishing never
blocks: a subscriber that falls behind loses events (counted in `dropped`)
rather than slowing a supervisor down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .state import ServerState

__all__ = [
    "ConnectFailed",
    "ConnectOverdue",
    "Connected",
    "Connecting",
    "Dropped",
    "EventBus",
    "GaveUp",
    "HealthCheckFailed",
    "HealthCheckPassed",
    "InternalError",
    "LifecycleEvent",
    "Lost",
    "Phase",
    "PromptsChanged",
    "ReconnectAttempt",
    "ReconnectScheduled",
    "ResourcesChanged",
    "Stopped",
    "Subscription",
    "ToolCalled",
    "ToolsChanged",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleEvent:
    """Common fields: which server, the state after the event, the state before it, and when."""

    kind: ClassVar[str] = "event"
    server: str
    transport: str
    criticality: str
    state: ServerState
    previous: ServerState
    ts: float  # unix time

    @property
    def transition(self) -> bool:
        """True when this event changed the server's state."""
        return self.state is not self.previous


@dataclass(frozen=True, slots=True)
class Phase:
    """One MCP client call of a connect attempt (`initialize` or `server/discover`, then
    `tools/list`), timed in unix seconds; `error_type` is set on the call that failed."""

    name: str
    started: float
    ended: float
    error_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Connecting(LifecycleEvent):
    """The first connect attempt since start (attempt 0; later ones are `ReconnectAttempt`)."""

    kind: ClassVar[str] = "connecting"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectAttempt(LifecycleEvent):
    """Reconnect attempt `attempt` (1-based, counted per outage) starts now."""

    kind: ClassVar[str] = "reconnect_attempt"
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(LifecycleEvent):
    """Transport open, handshake done, tools listed: the server serves calls now."""

    kind: ClassVar[str] = "connected"
    attempt: int  # 0 for the first connect, else the reconnect attempt that succeeded
    duration: float
    protocol_version: str | None
    server_name: str | None
    server_version: str | None
    tools: tuple[str, ...]
    phases: tuple[Phase, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectFailed(LifecycleEvent):
    kind: ClassVar[str] = "connect_failed"
    attempt: int
    duration: float
    error: str
    error_type: str
    phases: tuple[Phase, ...] = ()  # the calls that ran; the last one failed (none if spawning did)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectOverdue(LifecycleEvent):
    """Attempt `attempt` passed its connect timeout: the server is reported not ready, while the
    attempt goes on for up to `grace` more seconds (a slow start is waited for, not restarted)."""

    kind: ClassVar[str] = "connect_overdue"
    attempt: int
    timeout: float
    grace: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InternalError(LifecycleEvent):
    """A bug of mcp-sidecar's own, not a failure of the server: logged with its traceback and
    counted. The server recovers by the usual reconnect path, or waits failed for a reconnect."""

    kind: ClassVar[str] = "internal_error"
    error: str
    traceback: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheckPassed(LifecycleEvent):
    """A probe succeeded. Frequent: views should aggregate it, not log it."""

    kind: ClassVar[str] = "health_check_passed"
    duration: float
    method: str | None = None  # the probe's request: `ping`, or `server/discover` on 2026-07-28 sessions


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheckFailed(LifecycleEvent):
    kind: ClassVar[str] = "health_check_failed"
    duration: float
    error: str
    error_type: str  # probe_timeout | probe_error
    consecutive_failures: int
    method: str | None = None  # as in `HealthCheckPassed`


@dataclass(frozen=True, slots=True, kw_only=True)
class Lost(LifecycleEvent):
    """An active connection ended without being asked to. `reason`, by what proved it:

    exited           a stdio child exited by itself (`error` has its exit status and last stderr line)
    probe_timeout    probes went unanswered (threshold in a row, or the one sent as an event stream ended)
    probe_error      probes failed (threshold in a row)
    transport_error  the transport failed under the session: over HTTP, a request could not connect
                     or its connection broke; a killed HTTP server ends up here, found by the probe
                     sent the moment its event stream (GET or `subscriptions/listen`) dropped
    closed           the server ended it: a stdio or SSE stream ended with no exit to report, or the
                     event stream ended and the server would not take us back (re-open refused,
                     the probe after it failed with an answer such as "session terminated")
    internal_error   a bug of mcp-sidecar's own, not the server's (see `InternalError`)
    """

    kind: ClassVar[str] = "lost"
    reason: str  # exited | probe_timeout | probe_error | transport_error | closed | internal_error
    error: str
    connected_for: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectScheduled(LifecycleEvent):
    kind: ClassVar[str] = "reconnect_scheduled"
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GaveUp(LifecycleEvent):
    """The reconnect policy ran out of attempts."""

    kind: ClassVar[str] = "gave_up"
    attempts: int
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped(LifecycleEvent):
    kind: ClassVar[str] = "dropped"
    reason: str  # policy | manual


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopped(LifecycleEvent):
    kind: ClassVar[str] = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolsChanged(LifecycleEvent):
    """An active server's tools differ from the last list fetched (names, or only descriptions,
    schemas ...); the status already holds the new `offerings.tools`."""

    kind: ClassVar[str] = "tools_changed"
    tools: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptsChanged(LifecycleEvent):
    """An active server's prompts differ from the last list fetched; the status holds the new ones."""

    kind: ClassVar[str] = "prompts_changed"
    prompts: tuple[str, ...]  # names


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcesChanged(LifecycleEvent):
    """An active server's resources or resource templates differ from the last lists fetched."""

    kind: ClassVar[str] = "resources_changed"
    resources: tuple[str, ...]  # URIs
    resource_templates: tuple[str, ...]  # URI templates


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCalled(LifecycleEvent):
    """A tool call through the manager ended: `error_type` None when it got a result
    (a result with `is_error` set is `tool_error`). Frequent: views count it, logs skip it."""

    kind: ClassVar[str] = "tool_called"
    tool: str
    duration: float
    error_type: str | None


class Subscription:
    """A bounded queue of events for one subscriber. Iterate it; close it when done."""

    def __init__(self, bus: EventBus, max_buffer: int) -> None:
        self._bus = bus
        send, receive = anyio.create_memory_object_stream[LifecycleEvent](max_buffer)
        self._send: MemoryObjectSendStream[LifecycleEvent] = send
        self._receive: MemoryObjectReceiveStream[LifecycleEvent] = receive
        self.dropped = 0  # events lost because this subscriber fell behind

    def offer(self, event: LifecycleEvent) -> None:
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # closed by its reader; the bus forgets it on close()

    async def receive(self) -> LifecycleEvent:
        """The next event; raises `anyio.EndOfStream` once the bus is closed and drained."""
        return await self._receive.receive()

    def receive_nowait(self) -> LifecycleEvent:
        return self._receive.receive_nowait()

    def close(self) -> None:
        self._bus._forget(self)
        self._send.close()
        self._receive.close()

    def end(self) -> None:
        """Stop delivering: its reader gets what is buffered, then its loop ends (unlike
        `close()`, safe while another task is iterating it)."""
        self._bus._forget(self)
        self._end()

    def _end(self) -> None:
        self._send.close()  # the reader drains what is buffered, then sees EndOfStream

    def __aiter__(self) -> AsyncIterator[LifecycleEvent]:
        return self._receive.__aiter__()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Fan-out of lifecycle events to any number of subscriptions."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._closed = False

    def subscribe(self, max_buffer: int = 1024) -> Subscription:
        subscription = Subscription(self, max_buffer)
        if self._closed:
            subscription._end()
        else:
            self._subscriptions.append(subscription)
        return subscription

    def publish(self, event: LifecycleEvent) -> None:
        for subscription in tuple(self._subscriptions):
            subscription.offer(event)

    def close(self) -> None:
        """End every subscription after what it has buffered (at sidecar shutdown)."""
        self._closed = True
        for subscription in self._subscriptions:
            subscription._end()
        self._subscriptions.clear()

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
