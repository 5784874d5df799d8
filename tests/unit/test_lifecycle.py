"""The lifecycle decisions as a table: (status, outage, trigger, command, policy) -> next step."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sidecar.backoff import BackoffPolicy
from sidecar.events import (
    Connecting,
    Dropped,
    GaveUp,
    LifecycleEvent,
    ReconnectAttempt,
    ReconnectScheduled,
)
from sidecar.lifecycle import (
    Command,
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
from sidecar.state import ServerState, ServerStatus

S = ServerState
T = Trigger
C = Command
FOREVER = Policy(BackoffPolicy(initial=1.0, maximum=8.0, multiplier=2.0, jitter=0.0))
THREE_THEN_DROP = Policy(BackoffPolicy(initial=1.0, maximum=8.0, jitter=0.0, max_attempts=3), "drop")
THREE_THEN_KEEP = Policy(BackoffPolicy(initial=1.0, maximum=8.0, jitter=0.0, max_attempts=3), "keep")


def status(state: ServerState = S.RECONNECTING, **fields: object) -> ServerStatus:
    return ServerStatus(name="s", transport="stdio", criticality="optional", state=state, since=0.0, **fields)  # type: ignore[arg-type]


def first() -> Outage:
    return Outage()


def outage(failed: int) -> Outage:
    return Outage(failed_reconnects=failed, initial=False)


@dataclass(frozen=True)
class Case:
    id: str
    status: ServerStatus
    outage: Outage
    trigger: Trigger
    command: Command | None
    policy: Policy
    was_active: bool
    next: Next
    failed_after: int
    moves: tuple[tuple[type[LifecycleEvent], ServerState | None], ...]  # (event, state entered)
    delay: float = 0.0


CASES = [
    # After an attempt: back off with a growing delay, counting failures per outage.
    Case("first connect failed", status(), first(), T.ATTEMPT_ENDED, None, FOREVER, False,
         Next.BACK_OFF, 0, ((ReconnectScheduled, None),), delay=1.0),
    Case("reconnect 1 failed", status(), outage(0), T.ATTEMPT_ENDED, None, FOREVER, False,
         Next.BACK_OFF, 1, ((ReconnectScheduled, None),), delay=2.0),
    Case("reconnect 3 failed: delay capped", status(), outage(5), T.ATTEMPT_ENDED, None, FOREVER, False,
         Next.BACK_OFF, 6, ((ReconnectScheduled, None),), delay=8.0),
    Case("lost after being active: outage starts over", status(), outage(2), T.ATTEMPT_ENDED, None,
         FOREVER, True, Next.BACK_OFF, 0, ((ReconnectScheduled, None),), delay=1.0),
    # Running out of attempts.
    Case("last attempt failed, drop", status(), outage(2), T.ATTEMPT_ENDED, None, THREE_THEN_DROP, False,
         Next.WAIT, 0, ((GaveUp, S.FAILED), (Dropped, S.DROPPED))),
    Case("last attempt failed, keep", status(), outage(2), T.ATTEMPT_ENDED, None, THREE_THEN_KEEP, False,
         Next.WAIT, 0, ((GaveUp, S.FAILED),)),
    Case("one attempt short of giving up", status(), outage(1), T.ATTEMPT_ENDED, None, THREE_THEN_DROP,
         False, Next.BACK_OFF, 2, ((ReconnectScheduled, None),), delay=4.0),
    Case("first connect never gives up", status(), first(), T.ATTEMPT_ENDED, None, THREE_THEN_DROP, False,
         Next.BACK_OFF, 0, ((ReconnectScheduled, None),), delay=1.0),
    # Commands win over the policy.
    Case("reconnect asked during the attempt", status(), outage(2), T.ATTEMPT_ENDED, C.RECONNECT,
         THREE_THEN_DROP, False, Next.ATTEMPT, 0, ()),
    Case("drop asked while active", status(S.ACTIVE), outage(0), T.ATTEMPT_ENDED, C.DROP, FOREVER, True,
         Next.WAIT, 0, ((Dropped, S.DROPPED),)),
    Case("drop asked during backoff", status(), outage(1), T.BACKOFF_ENDED, C.DROP, FOREVER, False,
         Next.WAIT, 0, ((Dropped, S.DROPPED),)),
    Case("reconnect cuts the backoff short", status(), outage(1), T.BACKOFF_ENDED, C.RECONNECT, FOREVER,
         False, Next.ATTEMPT, 1, ()),
    Case("backoff passed", status(), outage(1), T.BACKOFF_ENDED, None, FOREVER, False, Next.ATTEMPT, 1, ()),
    # Out of service.
    Case("failed, revived", status(S.FAILED), outage(0), T.WOKEN, C.RECONNECT, FOREVER, False,
         Next.ATTEMPT, 0, ()),
    Case("dropped, revived", status(S.DROPPED), outage(0), T.WOKEN, C.RECONNECT, FOREVER, False,
         Next.ATTEMPT, 0, ()),
    Case("failed, then dropped by hand", status(S.FAILED), outage(0), T.WOKEN, C.DROP, FOREVER, False,
         Next.WAIT, 0, ((Dropped, S.DROPPED),)),
    Case("dropped, dropped again: nothing", status(S.DROPPED), outage(0), T.WOKEN, C.DROP, FOREVER, False,
         Next.WAIT, 0, ()),
    # Dropped at once by `request_drop` (drop_at_once): the task only parks it, saying nothing more.
    Case("attempt abandoned by a drop made at once", status(S.DROPPED), outage(2), T.ATTEMPT_ENDED, C.DROP,
         FOREVER, False, Next.WAIT, 0, ()),
    Case("backoff cut short by a drop made at once", status(S.DROPPED), outage(2), T.BACKOFF_ENDED, C.DROP,
         FOREVER, False, Next.WAIT, 0, ()),
    Case("woken for nothing", status(S.FAILED), outage(0), T.WOKEN, None, FOREVER, False, Next.WAIT, 0, ()),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_decision_table(case: Case) -> None:
    step = decide(
        case.status, case.outage, case.trigger, case.command, case.policy, was_active=case.was_active,
        rand=lambda: 0.0,
    )  # fmt: skip
    assert step.next is case.next
    assert step.outage.failed_reconnects == case.failed_after
    assert not step.outage.initial
    assert tuple((move.event, move.state) for move in step.moves) == case.moves
    assert step.delay == pytest.approx(case.delay)


def test_backoff_delay_uses_the_jitter_it_is_given() -> None:
    jittery = Policy(BackoffPolicy(initial=4.0, maximum=8.0, jitter=1.0))
    step = decide(status(), outage(0), T.ATTEMPT_ENDED, None, jittery, rand=lambda: 0.25)
    assert step.delay == pytest.approx(4.0 * 0.75 * 2)  # attempt 2's ceiling (8), a quarter off
    (scheduled,) = step.moves
    assert scheduled.fields == {"attempt": 2, "delay": step.delay}


def test_giving_up_reports_the_attempts_and_last_error() -> None:
    step = decide(status(last_error="refused"), outage(2), T.ATTEMPT_ENDED, None, THREE_THEN_KEEP, rand=float)
    assert step.moves[0].fields == {"attempts": 3, "error": "refused"}


def test_drop_resets_consecutive_failures() -> None:
    step = decide(status(S.ACTIVE), outage(0), T.ATTEMPT_ENDED, C.DROP, FOREVER, was_active=True, rand=float)
    (drop,) = step.moves
    assert drop.changes == {"consecutive_failures": 0}
    assert drop.fields == {"reason": "manual"}


def test_policy_drop_has_its_reason() -> None:
    step = decide(status(), outage(2), T.ATTEMPT_ENDED, None, THREE_THEN_DROP, rand=lambda: 0)
    assert step.moves[-1].fields == {"reason": "policy"}


def test_opening_moves_of_the_first_connect_and_a_reconnect() -> None:
    ((connecting,),) = [opening_moves(status(S.CONNECTING), first())]
    assert connecting.event is Connecting and connecting.state is None
    (reconnect,) = opening_moves(status(reconnect_attempts=4), outage(2))
    assert reconnect.event is ReconnectAttempt
    assert reconnect.state is S.RECONNECTING
    assert reconnect.changes == {"reconnect_attempts": 5}
    assert reconnect.fields == {"attempt": 3}


@pytest.mark.parametrize(("out", "number"), [(first(), 0), (outage(0), 1), (outage(4), 5)])
def test_attempt_numbers(out: Outage, number: int) -> None:
    assert attempt_number(out) == number


def test_steps_are_immutable() -> None:
    step = Step(Next.WAIT, first())
    with pytest.raises(AttributeError):
        step.next = Next.ATTEMPT  # type: ignore[misc]


@pytest.mark.parametrize("state", [S.RECONNECTING, S.FAILED])
def test_a_server_that_is_down_is_dropped_at_once(state: ServerState) -> None:
    (drop,) = drop_at_once(status(state, consecutive_failures=2))
    assert (drop.event, drop.state) == (Dropped, S.DROPPED)
    assert drop.fields == {"reason": "manual"}
    assert drop.changes == {"consecutive_failures": 0}


@pytest.mark.parametrize("state", [S.CONNECTING, S.ACTIVE, S.DROPPED, S.STOPPED])
def test_other_servers_are_dropped_by_their_task(state: ServerState) -> None:
    assert drop_at_once(status(state)) == ()
