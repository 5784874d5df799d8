"""One supervisor task per server: connect, watch, probe, reconnect, give up; nothing else does I/O.

The supervisor owns its server's connection for its whole life and is the only
writer of its status and the only publisher of its events, so both stay in order.
Other tasks steer it through `request_*` methods, which only set a flag and wake it.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from .backoff import BackoffPolicy, backoff_delay, gives_up
from .config import ServerConfig
from .connection import Connection, Passthrough, PhaseClock, open_connection
from .errors import describe_error, leaf_exceptions
from .events import (
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
    ReconnectAttempt,
    ReconnectScheduled,
    Stopped,
    ToolCalled,
    ToolsChanged,
)
from .health import ProbeResult, judge
from .redact import redact
from .state import ServerState, ServerStatus, check_transition
from .transports import ChildProcess

__all__ = ["Supervisor"]

_E = TypeVar("_E", bound=LifecycleEvent)

_S = ServerState
_EXIT_REPORT_WAIT = 0.2  # how long a lost stdio child may take to be reaped before we report it


@dataclasses.dataclass(frozen=True, slots=True)
class _Loss:
    reason: str  # exited | probe_timeout | probe_error | transport_error | closed
    error: str


def _has_error(exc: BaseException) -> bool:
    """True if `exc` carries a real error, not only cancellation (possibly grouped)."""
    return any(isinstance(leaf, Exception) for leaf in leaf_exceptions(exc))


class Supervisor:
    """Keeps one server connected, or says precisely why it is not."""

    passthrough: Passthrough | None = None  # the gateway's hooks, used from the next connect on

    def __init__(
        self,
        config: ServerConfig,
        bus: EventBus,
        *,
        close_timeout: float,
        secrets: frozenset[str] = frozenset(),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._bus = bus
        self._close_timeout = close_timeout
        self._secrets = secrets
        self._rand = rand
        reconnect = config.reconnect
        self._policy = BackoffPolicy(
            initial=reconnect.initial_backoff,
            maximum=reconnect.max_backoff,
            multiplier=reconnect.multiplier,
            jitter=reconnect.jitter,
            max_attempts=reconnect.max_attempts,
        )
        self._status = ServerStatus(
            name=config.name,
            transport=config.transport,
            criticality=config.criticality,
            state=_S.CONNECTING,
            since=time.time(),
        )
        self._connection: Connection | None = None
        self._child: ChildProcess | None = None
        self._clock = PhaseClock()  # times the client calls of the current connect attempt
        # Steering: flags plus one wake-up event, replaced after each wake.
        self._wake = anyio.Event()
        self._stopping = False
        self._command: str | None = None  # "reconnect" | "drop"
        self._tools_changed = False
        self._attempt_scope: anyio.CancelScope | None = None
        self._state_changed = anyio.Event()
        self.first_attempt_done = anyio.Event()
        self.finished = anyio.Event()
        self._attempts_completed = 0
        self._attempt_completed = anyio.Event()
        self._previous_state = _S.CONNECTING  # the state the next event reports as `previous`
        self._active_since = 0.0  # monotonic, for `Lost.connected_for`
        self._attempt_number = 0  # of the attempt under way, for its events

    # -- what others may read -------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def status(self) -> ServerStatus:
        return self._status

    @property
    def connection(self) -> Connection | None:
        """The live connection while the server is active, else None."""
        return self._connection if self._status.state is _S.ACTIVE else None

    @property
    def attempts_completed(self) -> int:
        return self._attempts_completed

    async def wait_for_state(self, states: set[ServerState]) -> None:
        """Return once the server is in one of `states`."""
        while self._status.state not in states:
            await self._state_changed.wait()

    async def wait_attempt_after(self, completed: int) -> None:
        """Return once more than `completed` connect attempts have finished (or the task ended)."""
        while self._attempts_completed <= completed and not self.finished.is_set():
            await self._attempt_completed.wait()

    # -- steering (from any task) ---------------------------------------------------------

    def request_reconnect(self) -> None:
        """Reconnect now: skip a pending backoff, or revive a failed or dropped server."""
        if not self._stopping:
            self._command = "reconnect"
            self._poke()

    def request_drop(self) -> None:
        """Stop trying and take the server out of service until a reconnect is requested."""
        if not self._stopping:
            self._command = "drop"
            self._poke(cancel_attempt=True)

    def request_stop(self) -> None:
        self._stopping = True
        self._poke(cancel_attempt=True)

    def _poke(self, cancel_attempt: bool = False) -> None:
        self._wake.set()
        if cancel_attempt and self._attempt_scope is not None and self._connection is None:
            self._attempt_scope.cancel()  # an in-flight connect is abandoned at once

    def _notice_tools_changed(self) -> None:
        self._tools_changed = True
        self._wake.set()

    def _remember_child(self, child: ChildProcess) -> None:
        self._child = child

    async def _wait_wake(self, timeout: float = math.inf) -> None:
        with anyio.move_on_after(timeout):
            await self._wake.wait()
        if self._wake.is_set():
            self._wake = anyio.Event()

    # -- the owner task -------------------------------------------------------------------

    async def run(self) -> None:
        """The supervisor's whole life; returns after `request_stop()`."""
        try:
            await self._lifecycle()
        finally:
            if self._status.state is not _S.STOPPED:
                self._change(_S.STOPPED, pid=None)
                self._emit(Stopped)
            self._connection = None
            self.first_attempt_done.set()
            self.finished.set()
            self._attempt_completed.set()

    async def _lifecycle(self) -> None:
        failed_reconnects = 0  # in the current outage
        initial = True
        while not self._stopping:
            # Attempt 0 is the first connect; reconnect attempts count from 1 in each outage.
            self._attempt_number = 0 if initial else failed_reconnects + 1
            if initial:
                self._emit(Connecting)
            else:
                self._change(_S.RECONNECTING, reconnect_attempts=self._status.reconnect_attempts + 1)
                self._emit(ReconnectAttempt, attempt=self._attempt_number)
            was_active = await self._attempt()
            if was_active:
                failed_reconnects = 0
            elif not initial:
                failed_reconnects += 1
            initial = False
            if self._stopping:
                return
            command, self._command = self._command, None
            if command == "reconnect":
                failed_reconnects = 0
                continue
            if command == "drop":
                await self._park(Dropped, reason="manual")
                failed_reconnects = 0
                continue
            if gives_up(self._policy, failed_reconnects):
                await self._give_up(failed_reconnects)
                failed_reconnects = 0
                continue
            await self._back_off(failed_reconnects + 1)

    async def _back_off(self, attempt: int) -> None:
        delay = backoff_delay(self._policy, attempt, self._rand)
        self._emit(ReconnectScheduled, attempt=attempt, delay=delay)
        deadline = anyio.current_time() + delay
        while not self._stopping and self._command is None:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return
            await self._wait_wake(remaining)
        if self._command == "drop":
            self._command = None
            await self._park(Dropped, reason="manual")
        elif self._command == "reconnect":
            self._command = None

    async def _give_up(self, attempts: int) -> None:
        self._change(_S.FAILED)
        self._emit(GaveUp, attempts=attempts, error=self._status.last_error)
        if self.config.reconnect.on_give_up == "drop":
            await self._park(Dropped, reason="policy")
        else:
            await self._wait_for_revival()

    async def _park(self, event: type[Dropped], reason: str) -> None:
        """Out of service until someone asks for a reconnect (or the sidecar stops)."""
        self._change(_S.DROPPED, consecutive_failures=0)
        self._emit(event, reason=reason)
        await self._wait_for_revival()

    async def _wait_for_revival(self) -> None:
        while not self._stopping:
            command, self._command = self._command, None
            if command == "reconnect":
                return
            if command == "drop" and self._status.state is _S.FAILED:
                self._change(_S.DROPPED)
                self._emit(Dropped, reason="manual")
            await self._wait_wake()

    def _finish_attempt(self) -> None:
        self._attempts_completed += 1
        self._attempt_completed.set()
        self._attempt_completed = anyio.Event()
        self.first_attempt_done.set()

    async def _attempt(self) -> bool:
        """One connect attempt and, if it succeeds, the whole active period. True if it was active."""
        config = self.config
        started = anyio.current_time()
        was_active = False
        failure: BaseException | None = None
        self._child = None
        self._clock = PhaseClock()
        with anyio.CancelScope(deadline=started + config.connect_timeout) as scope:
            self._attempt_scope = scope
            try:
                async with open_connection(
                    config,
                    close_timeout=self._close_timeout,
                    on_tools_changed=self._notice_tools_changed,
                    on_spawn=self._remember_child,
                    clock=self._clock,
                    passthrough=self.passthrough,
                ) as connection:
                    scope.deadline = math.inf
                    was_active = True
                    self._became_active(connection, anyio.current_time() - started)
                    self._finish_attempt()
                    loss = await self._serve(connection)
                    self._connection = None
                    if loss is not None:
                        self._lost(loss)
                    # Closing gets its own budget: a hung peer costs this, never more.
                    scope.deadline = anyio.current_time() + self._close_timeout
            except BaseException as exc:  # a broken server must never crash its supervisor
                if not _has_error(exc):
                    raise  # pure cancellation belongs to the scope that asked for it
                failure = exc
        self._attempt_scope = None
        self._connection = None
        if self._stopping or self._command is not None:
            pass  # asked to leave: not a failure of the server
        elif was_active:
            if self._status.state is _S.ACTIVE:  # the transport failed under a live session
                await self._lost_by_exception(failure)
        elif scope.cancel_called:
            await self._connect_failed(
                started, "timeout", f"no answer within the connect timeout ({config.connect_timeout:g}s)"
            )
        elif failure is not None:
            await self._connect_failed(started, *describe_error(failure))
        if not was_active:
            self._finish_attempt()
        return was_active

    # The active period ------------------------------------------------------------------

    async def _serve(self, connection: Connection) -> _Loss | None:
        """Wait for the first of: transport end, failed health, or a command. None = asked to leave."""
        outcome: list[_Loss | None] = []

        async with anyio.create_task_group() as tg:

            def finish(result: _Loss | None) -> None:
                if not outcome:
                    outcome.append(result)
                tg.cancel_scope.cancel()

            tg.start_soon(self._watch_transport, connection, finish)
            if self.config.health.interval > 0:
                tg.start_soon(self._probe_loop, connection, finish)
            tg.start_soon(self._watch_commands, connection, finish)
        return outcome[0] if outcome else None

    async def _watch_transport(self, connection: Connection, finish: Callable[[_Loss | None], None]) -> None:
        await connection.ended.wait()
        child = connection.child
        if child is not None:
            await child.settle(_EXIT_REPORT_WAIT)
            description = child.exit_description()
            if description is not None:
                finish(_Loss("exited", description))
                return
        finish(_Loss("closed", "the server closed the connection"))

    async def _probe_loop(self, connection: Connection, finish: Callable[[_Loss | None], None]) -> None:
        health = self.config.health
        failures = 0
        # Fixed rate: a probe starts every `interval`, however long the last one took, so a
        # hung server is judged within threshold x interval + timeout of its last answer.
        next_probe = anyio.current_time() + health.interval
        while True:
            await anyio.sleep_until(next_probe)
            started = anyio.current_time()
            next_probe = max(next_probe + health.interval, started + health.timeout)
            try:
                with anyio.fail_after(health.timeout):
                    await connection.probe()
                result = ProbeResult(duration=anyio.current_time() - started)
            except TimeoutError:
                result = ProbeResult(
                    anyio.current_time() - started,
                    "probe_timeout",
                    f"no answer to the probe within {health.timeout:g}s",
                )
            except Exception as exc:
                if connection.ended.is_set():
                    return  # the transport watcher reports this loss with the better reason
                result = ProbeResult(anyio.current_time() - started, "probe_error", describe_error(exc)[1])
            verdict = judge(failures, result, health.failure_threshold)
            failures = verdict.consecutive_failures
            self._status = dataclasses.replace(self._status, consecutive_failures=failures)
            if result.ok:
                self._emit(HealthCheckPassed, duration=result.duration)
                continue
            assert result.error_type is not None and result.error is not None
            self._emit(
                HealthCheckFailed,
                duration=result.duration,
                error=self._redact(result.error),
                error_type=result.error_type,
                consecutive_failures=failures,
            )
            if verdict.unhealthy:
                finish(_Loss(result.error_type, result.error))
                return

    async def _watch_commands(self, connection: Connection, finish: Callable[[_Loss | None], None]) -> None:
        while True:
            if self._stopping or self._command is not None:
                finish(None)
                return
            if self._tools_changed:
                self._tools_changed = False
                await self._refresh_tools(connection)
            await self._wait_wake()

    async def _refresh_tools(self, connection: Connection) -> None:
        try:
            with anyio.fail_after(self.config.call_timeout):
                tools = await connection.refresh_tools()
        except Exception:
            return  # the probe decides whether the server is sick; a stale list is harmless
        names = tuple(tool.name for tool in tools)
        self._status = dataclasses.replace(self._status, tools=names)
        self._emit(ToolsChanged, tools=names)

    # State changes ----------------------------------------------------------------------

    def _became_active(self, connection: Connection, duration: float) -> None:
        info = connection.server_info
        tools = tuple(tool.name for tool in connection.tools)
        self._connection = connection
        self._change(
            _S.ACTIVE,
            last_error=None,
            last_error_type=None,
            consecutive_failures=0,
            tools=tools,
            protocol_version=connection.protocol_version,
            server_name=info.name if info else None,
            server_version=info.version if info else None,
            pid=connection.child.pid if connection.child else None,
        )
        self._active_since = anyio.current_time()
        self._emit(
            Connected,
            attempt=self._attempt_number,
            duration=duration,
            protocol_version=connection.protocol_version,
            server_name=self._status.server_name,
            server_version=self._status.server_version,
            tools=tools,
            phases=self._clock.phases(),
        )

    def _lost(self, loss: _Loss) -> None:
        error = self._redact(loss.error)
        self._change(_S.RECONNECTING, last_error=error, last_error_type=loss.reason, pid=None)
        self._emit(
            Lost,
            reason=loss.reason,
            error=error,
            connected_for=anyio.current_time() - self._active_since,
        )

    async def _lost_by_exception(self, exc: BaseException | None) -> None:
        """The transport failed under an active session (HTTP peers fail this way)."""
        description = await self._child_exit()
        if description is not None:
            self._lost(_Loss("exited", description))
        elif exc is not None:
            self._lost(_Loss("transport_error", describe_error(exc)[1]))
        else:
            self._lost(_Loss("closed", "the connection ended"))

    async def _connect_failed(self, started: float, error_type: str, error: str) -> None:
        description = await self._child_exit()
        if description is not None:
            error_type, error = "exited", description
        error = self._redact(error)
        # The first failure leaves `connecting`; later ones stay in `reconnecting`.
        self._change(_S.RECONNECTING, last_error=error, last_error_type=error_type, pid=None)
        self._emit(
            ConnectFailed,
            attempt=self._attempt_number,
            duration=anyio.current_time() - started,
            error=error,
            error_type=error_type,
            phases=self._clock.phases(error_type),
        )

    async def _child_exit(self) -> str | None:
        if self._child is None:
            return None
        await self._child.settle(_EXIT_REPORT_WAIT)
        return self._child.exit_description()

    def _change(self, state: ServerState, **fields: Any) -> None:
        current = self._status
        if state is not current.state:
            check_transition(current.state, state)
            fields["since"] = time.time()
        self._previous_state = current.state
        self._status = dataclasses.replace(current, state=state, **fields)
        if state is not current.state:
            self._state_changed.set()
            self._state_changed = anyio.Event()

    def tool_called(self, tool: str, duration: float, error_type: str | None) -> ToolCalled:
        """The event for a call made through this server's session (the manager publishes it)."""
        state = self._status.state
        return self._event(ToolCalled, state, tool=tool, duration=duration, error_type=error_type)

    def _emit(self, event_type: type[LifecycleEvent], **fields: Any) -> None:
        previous, self._previous_state = self._previous_state, self._status.state
        self._bus.publish(self._event(event_type, previous, **fields))

    def _event(self, event_type: type[_E], previous: ServerState, **fields: Any) -> _E:
        status = self._status
        return event_type(
            server=status.name,
            transport=status.transport,
            criticality=status.criticality,
            state=status.state,
            previous=previous,
            ts=time.time(),
            **fields,
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)
