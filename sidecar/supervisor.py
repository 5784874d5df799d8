"""One supervisor task per server: connect, watch, probe, reconnect, give up; nothing else does I/O.

The supervisor owns its server's connection for its whole life and is the only
writer of its status and the only publisher of its events, so both stay in order.
Other tasks steer it through `request_*` methods, which only set a flag and wake it;
`request_drop()` also makes the moves `lifecycle.drop_at_once` decides (a server that is
down leaves service at once), through the same `_make` as every other change.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from .backoff import BackoffPolicy
from .config import ServerConfig
from .connection import KINDS, Connection, Passthrough, PhaseClock, open_connection
from .errors import describe_error, is_internal_error, leaf_exceptions
from .events import (
    Connected,
    ConnectFailed,
    ConnectOverdue,
    EventBus,
    HealthCheckFailed,
    HealthCheckPassed,
    InternalError,
    LifecycleEvent,
    Lost,
    PromptsChanged,
    ResourcesChanged,
    Stopped,
    ToolCalled,
    ToolsChanged,
)
from .health import ProbeResult, judge
from .http_probe import HttpProber, ProbeUnreachable, SessionGone
from .lifecycle import (
    Command,
    Move,
    Next,
    Outage,
    Policy,
    Step,
    Trigger,
    attempt_number,
    decide,
    drop_at_once,
    opening_moves,
)
from .redact import redact
from .state import ServerState, ServerStatus, check_transition
from .streams import after_stream_end
from .transports import ChildProcess

__all__ = ["Supervisor"]

_log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=LifecycleEvent)

_S = ServerState
_EXIT_REPORT_WAIT = 0.2  # how long a lost stdio child may take to be reaped before we report it


@dataclasses.dataclass(frozen=True, slots=True)
class _Loss:
    reason: str  # exited | probe_timeout | probe_error | transport_error | closed | internal_error
    error: str


def _cancellation(exc: BaseException) -> BaseException | None:
    """The cancellation in `exc` (possibly grouped with errors), or None."""
    cancelled = anyio.get_cancelled_exc_class()
    return next((leaf for leaf in leaf_exceptions(exc) if isinstance(leaf, cancelled)), None)


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
        connect_slots: anyio.CapacityLimiter | None = None,
        prober: HttpProber | None = None,
    ) -> None:
        self.config = config
        self._prober = prober
        self._bus = bus
        self._close_timeout = close_timeout
        self._secrets = secrets
        self._rand = rand
        self._connect_slots = connect_slots
        self._holds_slot = False
        reconnect = config.reconnect
        backoff = BackoffPolicy(
            initial=reconnect.initial_backoff,
            maximum=reconnect.max_backoff,
            multiplier=reconnect.multiplier,
            jitter=reconnect.jitter,
            max_attempts=reconnect.max_attempts,
        )
        self._policy = Policy(backoff, reconnect.on_give_up)
        self._grace = config.effective_connect_grace
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
        self._command: Command | None = None
        self._changed: set[str] = set()  # kinds of offerings announced as changed, not yet re-listed
        self._attempt_scope: anyio.CancelScope | None = None
        self._state_changed = anyio.Event()
        self.first_attempt_done = anyio.Event()
        self.finished = anyio.Event()
        self._attempts_completed = 0
        self._attempt_completed = anyio.Event()
        self._previous_state = _S.CONNECTING  # the state the next event reports as `previous`
        self._active_since = 0.0  # monotonic, for `Lost.connected_for`
        self._attempt_number = 0  # of the attempt under way, for its events
        self._attempt_reported = False  # the attempt under way has counted as completed

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
            self._command = Command.RECONNECT
            self._poke()

    def request_drop(self) -> None:
        """Stop trying and take the server out of service until a reconnect is requested.

        A server that is down is dropped here and now (`drop_at_once`), so the caller's next
        look at the status shows it; this task then abandons its attempt in flight, if any.
        """
        if not self._stopping:
            self._command = Command.DROP
            self._make(drop_at_once(self._status))
            self._poke(cancel_attempt=True)

    def request_stop(self) -> None:
        self._stopping = True
        self._poke(cancel_attempt=True)

    def _poke(self, cancel_attempt: bool = False) -> None:
        self._wake.set()
        if cancel_attempt and self._attempt_scope is not None and self._connection is None:
            self._attempt_scope.cancel()  # an in-flight connect is abandoned at once

    def _notice_change(self, kind: str) -> None:
        self._changed.add(kind)
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
            outage = Outage()
            while not self._stopping:
                try:
                    await self._lifecycle(outage)
                except Exception as exc:  # a bug of ours outside any attempt: stop the server, visibly
                    self._connection = None
                    self._force(_S.FAILED)  # not checked: the bug may have been an illegal transition
                    self._internal_error(exc)
                    await self._wait_for_revival()
                    outage = Outage(initial=False)  # the next attempt is a reconnect

        finally:
            if self._status.state is not _S.STOPPED:
                self._change(_S.STOPPED, pid=None)
                self._emit(Stopped)
            self._connection = None
            self.first_attempt_done.set()
            self.finished.set()
            self._attempt_completed.set()

    async def _wait_for_revival(self) -> None:
        """Out of service after a bug of ours until a reconnect (or a stop); a drop has already
        taken effect in `request_drop`, so it only consumes the command."""
        while not self._stopping:
            await self._wait_for_command()
            command, self._command = self._command, None
            if command is Command.RECONNECT:
                return

    async def _lifecycle(self, outage: Outage) -> None:
        """Attempt, then do what `lifecycle.decide` says; this loop only does the waiting."""
        step = Step(Next.ATTEMPT, outage)
        while not self._stopping:
            self._make(step.moves)
            was_active = False
            if step.next is Next.ATTEMPT:
                self._make(opening_moves(self._status, step.outage))
                self._attempt_number = attempt_number(step.outage)
                was_active = await self._attempt()
                trigger = Trigger.ATTEMPT_ENDED
            elif step.next is Next.BACK_OFF:
                await self._wait_for_command(anyio.current_time() + step.delay)
                trigger = Trigger.BACKOFF_ENDED
            else:
                await self._wait_for_command()
                trigger = Trigger.WOKEN
            if self._stopping:
                return
            command, self._command = self._command, None
            step = decide(
                self._status,
                step.outage,
                trigger,
                command,
                self._policy,
                was_active=was_active,
                rand=self._rand,
            )

    async def _wait_for_command(self, deadline: float = math.inf) -> None:
        """Wait until a command or a stop arrives, or `deadline` passes."""
        while not self._stopping and self._command is None:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return
            await self._wait_wake(remaining)

    def _make(self, moves: tuple[Move, ...]) -> None:
        for move in moves:
            if move.state is not None:
                self._change(move.state, **move.changes)
            self._emit(move.event, **move.fields)

    def _finish_attempt(self) -> None:
        """The attempt has an outcome callers may act on (once per attempt: connected, failed,
        or overdue while it goes on in its grace period)."""
        if self._attempt_reported:
            return
        self._attempt_reported = True
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
        self._attempt_reported = False
        overdue_timer = anyio.CancelScope()
        try:
            # The connect timeout makes the server "not ready"; the attempt itself may go on
            # for the grace period, since killing a slow start only repeats its work.
            with anyio.CancelScope() as scope:
                self._attempt_scope = scope
                await self._take_slot()  # the timeout runs from here: waiting for a place is not slowness
                started = anyio.current_time()
                scope.deadline = started + config.connect_timeout + self._grace
                async with anyio.create_task_group() as timers:
                    timers.start_soon(self._report_overdue, overdue_timer, started)
                    async with open_connection(
                        config,
                        close_timeout=self._close_timeout,
                        on_change=self._notice_change,
                        on_spawn=self._remember_child,
                        clock=self._clock,
                        passthrough=self.passthrough,
                        prober=self._prober,
                    ) as connection:
                        # Dropped or stopped as the handshake finished: never serve it.
                        await anyio.lowlevel.checkpoint_if_cancelled()
                        overdue_timer.cancel()
                        self._give_slot_back()
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
                    overdue_timer.cancel()
        except BaseException as exc:  # a broken server must never crash its supervisor
            # Our own scope has taken its cancellation out already: what is left belongs to
            # whoever cancelled us, and is never swallowed, even grouped with errors.
            if (cancelled := _cancellation(exc)) is not None:
                raise cancelled from None
            failure = exc
        finally:
            self._give_slot_back()
            self._attempt_scope = None
            self._connection = None
        described = self._describe(failure) if failure is not None else None
        if self._stopping or self._command is not None:
            pass  # asked to leave: not a failure of the server
        elif was_active:
            if self._status.state is _S.ACTIVE:  # the transport failed under a live session
                await self._lost_by_exception(described)
        elif scope.cancel_called:
            await self._connect_failed(
                started,
                "timeout",
                f"no answer within the connect timeout ({config.connect_timeout:g}s)"
                + (f" and its {self._grace:g}s grace" if self._grace else ""),
            )
        elif described is not None:
            await self._connect_failed(started, *described)
        if not was_active:
            self._finish_attempt()
        return was_active

    async def _report_overdue(self, timer: anyio.CancelScope, started: float) -> None:
        """At the connect timeout, report the server not ready; its attempt goes on (grace)."""
        with timer:
            await anyio.sleep_until(started + self.config.connect_timeout)
            await anyio.lowlevel.checkpoint_if_cancelled()  # the attempt was dropped or stopped meanwhile
            if self._grace <= 0:
                return  # the attempt's own deadline ends it now
            error = f"no answer within the connect timeout ({self.config.connect_timeout:g}s); still waiting"
            self._change(_S.RECONNECTING, last_error=error, last_error_type="timeout")
            self._emit(
                ConnectOverdue,
                attempt=self._attempt_number,
                timeout=self.config.connect_timeout,
                grace=self._grace,
            )
            self._finish_attempt()
            self._give_slot_back()  # a slow or hung start must not hold up the others' connects

    async def _take_slot(self) -> None:
        if self._connect_slots is not None:
            await self._connect_slots.acquire_on_behalf_of(self)
            self._holds_slot = True

    def _give_slot_back(self) -> None:
        if self._holds_slot and self._connect_slots is not None:
            self._holds_slot = False
            self._connect_slots.release_on_behalf_of(self)

    def _describe(self, failure: BaseException) -> tuple[str, str]:
        """(error_type, message) of a failed attempt: the server's failure, or a bug of ours."""
        if not is_internal_error(failure):
            return describe_error(failure)
        self._internal_error(failure)
        return "internal_error", self._status.last_error or "internal error"

    def _internal_error(self, exc: BaseException) -> None:
        """A bug of ours, not the server's: an event (logged with its traceback, counted), and a
        status that says so instead of blaming the server."""
        leaf = next((e for e in leaf_exceptions(exc) if isinstance(e, Exception)), exc)
        error = self._redact(f"internal error: {type(leaf).__name__}: {leaf}")
        self._status = dataclasses.replace(self._status, last_error=error, last_error_type="internal_error")
        trace = "".join(traceback.format_exception(leaf))
        self._emit(InternalError, error=error, traceback=self._redact(trace))

    # The active period ------------------------------------------------------------------

    async def _serve(self, connection: Connection) -> _Loss | None:
        """Wait for the first of: transport end, event stream lost, failed health, or a command.
        None = asked to leave."""
        outcome: list[_Loss | None] = []

        async with anyio.create_task_group() as tg:

            def finish(result: _Loss | None) -> None:
                if not outcome:
                    outcome.append(result)
                tg.cancel_scope.cancel()

            tg.start_soon(self._watch_transport, connection, finish)
            if connection.has_stream:
                tg.start_soon(self._watch_stream, connection, finish)
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
        method = "ping" if connection.legacy else "server/discover"  # what `connection.probe()` sends
        # Fixed rate: a probe starts every `interval`, however long the last one took, so a
        # hung server is judged within threshold x interval + timeout of its last answer. The
        # first one comes at a random point of the first interval: servers that connected
        # together (all of them, at start) must not all be probed in the same instant.
        next_probe = anyio.current_time() + health.interval * (1.0 - self._rand())
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
            except ProbeUnreachable as exc:
                finish(_Loss("transport_error", str(exc)))  # as a failed SDK request would end the session
                return
            except SessionGone as exc:
                result = ProbeResult(
                    anyio.current_time() - started, "probe_error", str(exc), session_gone=True
                )
            except Exception as exc:
                if connection.ended.is_set():
                    return  # the transport watcher reports this loss with the better reason
                result = ProbeResult(anyio.current_time() - started, "probe_error", describe_error(exc)[1])
            verdict = judge(failures, result, health.failure_threshold)
            failures = verdict.consecutive_failures
            self._status = dataclasses.replace(self._status, consecutive_failures=failures)
            if result.ok:
                self._emit(HealthCheckPassed, duration=result.duration, method=method)
                continue
            assert result.error_type is not None and result.error is not None
            self._emit(
                HealthCheckFailed,
                duration=result.duration,
                error=self._redact(result.error),
                error_type=result.error_type,
                consecutive_failures=failures,
                method=method,
            )
            if verdict.unhealthy:
                finish(_Loss(result.error_type, result.error))
                return

    async def _watch_stream(self, connection: Connection, finish: Callable[[_Loss | None], None]) -> None:
        """Hold the server's event stream open: its changes are followed, its end is checked at once.

        A stream that ends is not a death by itself (servers and proxies close idle streams):
        one probe tells. A failed probe or a failed re-open is a loss; a server that refuses
        the stream, keeps ending it, or never acknowledges it, is left to the health probes.
        The transport's own end (a stdio child's exit) is `_watch_transport`'s to report, with
        its better reason.
        """
        timeout = self.config.health.timeout
        reopens = late = 0  # quick re-opens in a row; late first opens tried again (each its own budget)
        reopening = False

        def missed() -> None:
            # The stream opened after the lists were fetched and nothing is replayed: list again.
            self._changed.update(connection.listed)
            self._wake.set()

        while True:
            end = await connection.hold_stream(
                self._notice_change, missed, reopening=reopening, ack_timeout=timeout
            )
            if connection.ended.is_set():
                return
            step = after_stream_end(end, late if end.kind == "late" else reopens)
            if step.action == "lost":
                finish(_Loss("closed", f"the event stream could not be re-opened: {end.error}"))
                return
            if end.kind in ("graceful", "dropped"):
                loss = await self._check_after_end(connection, timeout)
                if loss is not None:
                    if not connection.ended.is_set():
                        finish(loss)
                    return
            if step.action == "probes_only":
                reason = self._redact(str(end.error))
                _log.info("%s: no event stream (%s); health probes only", self.name, reason)
                return
            # A late first open is tried again as a first open: late again is not a loss.
            if end.kind == "late":
                late, reopening = step.reopens, False
            else:
                reopens, reopening = step.reopens, True
            await anyio.sleep(step.delay)

    async def _check_after_end(self, connection: Connection, timeout: float) -> _Loss | None:
        """One probe right after the stream ended: None if the server answered, else the loss.

        Over HTTP a server that is gone fails this probe inside the transport (connection
        refused), which ends the whole connection as a `transport_error` before we return.
        """
        try:
            with anyio.fail_after(timeout):
                await connection.probe()
        except TimeoutError:
            error = f"the event stream ended and a probe got no answer within {timeout:g}s"
            return _Loss("probe_timeout", error)
        except ProbeUnreachable as exc:
            return _Loss("transport_error", str(exc))
        except Exception as exc:
            return _Loss("closed", f"the event stream ended and a probe failed: {describe_error(exc)[1]}")
        return None

    async def _watch_commands(self, connection: Connection, finish: Callable[[_Loss | None], None]) -> None:
        while True:
            if self._stopping or self._command is not None:
                finish(None)
                return
            if self._changed:
                kinds, self._changed = self._changed, set()
                await self._refresh(connection, kinds)
            await self._wait_wake()

    async def _refresh(self, connection: Connection, kinds: set[str]) -> None:
        """Re-list what was announced as changed; publish what really changed, once the status has it."""
        for kind in KINDS:
            if kind not in kinds:
                continue
            try:
                with anyio.fail_after(self.config.call_timeout):
                    await connection.refresh(kind)
            except Exception as exc:
                if is_internal_error(exc):
                    raise
                continue  # the probe decides whether the server is sick; a stale list is harmless
        before, after = self._status.offerings, connection.offerings
        self._status = dataclasses.replace(self._status, offerings=after, tools=_names(after.tools))
        if after.tools != before.tools:
            self._emit(ToolsChanged, tools=_names(after.tools))
        if after.prompts != before.prompts:
            self._emit(PromptsChanged, prompts=_names(after.prompts))
        if (after.resources, after.resource_templates) != (before.resources, before.resource_templates):
            self._emit(
                ResourcesChanged,
                resources=tuple(str(resource.uri) for resource in after.resources),
                resource_templates=tuple(template.uri_template for template in after.resource_templates),
            )

    # State changes ----------------------------------------------------------------------

    def _became_active(self, connection: Connection, duration: float) -> None:
        info = connection.server_info
        tools = _names(connection.tools)
        for kind, error in connection.listing_errors.items():
            _log.warning("%s: could not list %s at connect: %s", self.name, kind, self._redact(error))
        self._connection = connection
        self._change(
            _S.ACTIVE,
            last_error=None,
            last_error_type=None,
            consecutive_failures=0,
            tools=tools,
            offerings=connection.offerings,
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

    async def _lost_by_exception(self, described: tuple[str, str] | None) -> None:
        """The transport failed under an active session (HTTP peers fail this way)."""
        description = await self._child_exit()
        if description is not None:
            self._lost(_Loss("exited", description))
        elif described is not None and described[0] == "internal_error":
            self._lost(_Loss("internal_error", described[1]))
        elif described is not None:
            self._lost(_Loss("transport_error", described[1]))
        else:
            self._lost(_Loss("closed", "the connection ended"))

    async def _connect_failed(self, started: float, error_type: str, error: str) -> None:
        description = await self._child_exit()
        if self._status.state is _S.DROPPED:
            return  # dropped by hand while we waited (`request_drop`): this failure is moot
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

    def _force(self, state: ServerState) -> None:
        """Enter `state` without the legality check: only for recovering from a bug of ours."""
        self._previous_state = self._status.state
        self._status = dataclasses.replace(self._status, state=state, since=time.time())
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


def _names(items: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(item.name for item in items)
