"""What a supervisor does next: the lifecycle decisions as pure functions.

After each connect attempt, backoff wait or wake-up, the supervisor asks `decide`
what follows (attempt again, back off, wait out of service) and which state change
and events go with it; it then only does the I/O. No clock, no randomness of its own
(`rand` is passed in), no I/O, so a table of cases tests every path:

    attempt ──► (active period) ──► back off ──► attempt ...
       │                              │
       ├─ command reconnect ──► attempt now
       ├─ command drop ───────► dropped (manual) ──► wait ──► reconnect ──► attempt
       │   (a server that is down is dropped when the command is given: `drop_at_once`)
       └─ out of attempts ────► failed ──► dropped (policy) or kept failed ──► wait
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .backoff import BackoffPolicy, backoff_delay, gives_up
from .events import (
    Connecting,
    Dropped,
    GaveUp,
    LifecycleEvent,
    ReconnectAttempt,
    ReconnectScheduled,
)
from .state import ServerState, ServerStatus

__all__ = [
    "Command",
    "Move",
    "Next",
    "Outage",
    "Policy",
    "Step",
    "Trigger",
    "attempt_number",
    "decide",
    "drop_at_once",
    "opening_moves",
]

_S = ServerState


class Command(enum.StrEnum):
    """What an operator or the library asked for, pending until the supervisor acts on it."""

    RECONNECT = "reconnect"
    DROP = "drop"


class Trigger(enum.StrEnum):
    """What just happened to the supervisor."""

    ATTEMPT_ENDED = "attempt_ended"  # a connect attempt ended (after an active period, or not)
    BACKOFF_ENDED = "backoff_ended"  # the backoff delay passed, or a command cut it short
    WOKEN = "woken"  # out of service (failed or dropped), and something woke it


class Next(enum.StrEnum):
    ATTEMPT = "attempt"  # connect now
    BACK_OFF = "back_off"  # wait `Step.delay`, then decide again (a command cuts it short)
    WAIT = "wait"  # out of service until a command


@dataclass(frozen=True, slots=True)
class Policy:
    backoff: BackoffPolicy
    on_give_up: Literal["drop", "keep"] = "drop"


@dataclass(frozen=True, slots=True)
class Outage:
    """The bookkeeping of the current outage that the decisions need."""

    failed_reconnects: int = 0  # reconnect attempts that failed since the server was last active
    initial: bool = True  # nothing attempted yet: the next attempt is the first connect


@dataclass(frozen=True, slots=True)
class Move:
    """One event to publish, after entering `state` (None: stay) with `changes` to other status fields.
    The supervisor adds the event's common fields."""

    event: type[LifecycleEvent]
    fields: Mapping[str, Any] = field(default_factory=dict)
    state: ServerState | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """The decision: what to do next, and the moves (state changes and events) that come first."""

    next: Next
    outage: Outage
    moves: tuple[Move, ...] = ()
    delay: float = 0.0  # for BACK_OFF


def opening_moves(status: ServerStatus, outage: Outage) -> tuple[Move, ...]:
    """The state change and event that open a connect attempt (number 0 is the first connect)."""
    if outage.initial:
        return (Move(Connecting),)
    reconnect = Move(
        ReconnectAttempt,
        {"attempt": attempt_number(outage)},
        state=_S.RECONNECTING,
        changes={"reconnect_attempts": status.reconnect_attempts + 1},
    )
    return (reconnect,)


def attempt_number(outage: Outage) -> int:
    """0 for the first connect, else the reconnect attempt's number (1-based) within its outage."""
    return 0 if outage.initial else outage.failed_reconnects + 1


def drop_at_once(status: ServerStatus) -> tuple[Move, ...]:
    """What a drop asked for by hand does right away, before the supervisor's task wakes.

    A server that is down (reconnecting or failed) leaves service at once, so the caller
    sees the drop in the very next status; an attempt of it still in flight is abandoned
    by its task, which then finds it dropped (see `decide`). A server in any other state
    is dropped by its task, once its connection is closed.
    """
    if status.state in (_S.RECONNECTING, _S.FAILED):
        return (_dropped("manual"),)
    return ()


def decide(
    status: ServerStatus,
    outage: Outage,
    trigger: Trigger,
    command: Command | None,
    policy: Policy,
    *,
    was_active: bool = False,
    rand: Callable[[], float],
) -> Step:
    """What follows `trigger`, given the server's status, its outage and a pending command.

    `was_active` (with ATTEMPT_ENDED): the attempt reached `active` before it ended.
    A command always wins over the policy; it is consumed by the step that acts on it.
    """
    fresh = Outage(failed_reconnects=0, initial=False)
    if trigger is Trigger.ATTEMPT_ENDED:
        if was_active or outage.initial:
            outage = fresh
        else:
            outage = Outage(failed_reconnects=outage.failed_reconnects + 1, initial=False)
        if command is Command.RECONNECT:
            return Step(Next.ATTEMPT, fresh)
        if command is Command.DROP:
            return _drop(status)
        if gives_up(policy.backoff, outage.failed_reconnects):
            return _give_up(status, outage, policy)
        attempt = outage.failed_reconnects + 1
        delay = backoff_delay(policy.backoff, attempt, rand)
        scheduled = Move(ReconnectScheduled, {"attempt": attempt, "delay": delay})
        return Step(Next.BACK_OFF, outage, (scheduled,), delay=delay)
    if trigger is Trigger.BACKOFF_ENDED:
        if command is Command.DROP:
            return _drop(status)
        return Step(Next.ATTEMPT, outage)  # a reconnect command only cuts the wait short
    # WOKEN while out of service: only a command matters.
    if command is Command.RECONNECT:
        return Step(Next.ATTEMPT, fresh)
    if command is Command.DROP and status.state is _S.FAILED:
        return _drop(status)
    return Step(Next.WAIT, outage)


def _dropped(reason: str) -> Move:
    return Move(Dropped, {"reason": reason}, state=_S.DROPPED, changes={"consecutive_failures": 0})


def _drop(status: ServerStatus) -> Step:
    """A drop by hand, unless `drop_at_once` has already made it (then there is nothing to say)."""
    moves = () if status.state is _S.DROPPED else (_dropped("manual"),)
    return Step(Next.WAIT, Outage(initial=False), moves)


def _give_up(status: ServerStatus, outage: Outage, policy: Policy) -> Step:
    attempts, error = outage.failed_reconnects, status.last_error
    gave_up = Move(GaveUp, {"attempts": attempts, "error": error}, state=_S.FAILED)
    moves = (gave_up, _dropped("policy")) if policy.on_give_up == "drop" else (gave_up,)
    return Step(Next.WAIT, Outage(initial=False), moves)
