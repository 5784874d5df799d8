"""The lifecycle as data: the full transition table, `is_down`, and the frozen status snapshot."""

from __future__ import annotations

import dataclasses
import itertools

import mcp_types as types
import pytest

from sidecar.state import IllegalTransition, Offerings, ServerState, ServerStatus, check_transition, is_down

S = ServerState

# The lifecycle, written out independently of the module's table.
ALLOWED: set[tuple[ServerState, ServerState]] = {
    (S.CONNECTING, S.ACTIVE),
    (S.CONNECTING, S.RECONNECTING),
    (S.CONNECTING, S.FAILED),
    (S.CONNECTING, S.DROPPED),
    (S.CONNECTING, S.STOPPED),
    (S.ACTIVE, S.RECONNECTING),
    (S.ACTIVE, S.FAILED),
    (S.ACTIVE, S.DROPPED),
    (S.ACTIVE, S.STOPPED),
    (S.RECONNECTING, S.ACTIVE),
    (S.RECONNECTING, S.FAILED),
    (S.RECONNECTING, S.DROPPED),
    (S.RECONNECTING, S.STOPPED),
    (S.FAILED, S.RECONNECTING),
    (S.FAILED, S.DROPPED),
    (S.FAILED, S.STOPPED),
    (S.DROPPED, S.RECONNECTING),
    (S.DROPPED, S.STOPPED),
}

ALL_PAIRS = list(itertools.product(ServerState, repeat=2))


def test_there_are_six_states_with_contract_values() -> None:
    assert [s.value for s in ServerState] == [
        "connecting",
        "active",
        "reconnecting",
        "failed",
        "dropped",
        "stopped",
    ]
    assert len(ALL_PAIRS) == 36


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS, ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS])
def test_transition_table(current: ServerState, new: ServerState) -> None:
    if (current, new) in ALLOWED:
        check_transition(current, new)  # does not raise
    else:
        with pytest.raises(IllegalTransition, match=f"{current.value} -> {new.value}"):
            check_transition(current, new)


@pytest.mark.parametrize("state", list(ServerState), ids=lambda s: s.value)
def test_self_transition_is_never_legal(state: ServerState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(state, state)


@pytest.mark.parametrize("state", list(ServerState), ids=lambda s: s.value)
def test_every_state_may_stop_except_stopped(state: ServerState) -> None:
    if state is S.STOPPED:
        with pytest.raises(IllegalTransition):
            check_transition(state, S.STOPPED)
    else:
        check_transition(state, S.STOPPED)


@pytest.mark.parametrize("new", list(ServerState), ids=lambda s: s.value)
def test_stopped_is_terminal(new: ServerState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(S.STOPPED, new)


def test_nothing_returns_to_connecting() -> None:
    for current in ServerState:
        with pytest.raises(IllegalTransition):
            check_transition(current, S.CONNECTING)


def test_illegal_transition_is_a_runtime_error() -> None:
    assert issubclass(IllegalTransition, RuntimeError)


@pytest.mark.parametrize(
    ("state", "down"),
    [
        (S.CONNECTING, False),
        (S.ACTIVE, False),
        (S.RECONNECTING, True),
        (S.FAILED, True),
        (S.DROPPED, False),
        (S.STOPPED, False),
    ],
    ids=lambda v: v.value if isinstance(v, ServerState) else str(v),
)
def test_is_down(state: ServerState, down: bool) -> None:
    assert is_down(state) is down
    status = ServerStatus(name="s", transport="stdio", criticality="critical", state=state, since=0.0)
    assert status.down is down
    assert status.active is (state is S.ACTIVE)


def _status(**overrides: object) -> ServerStatus:
    fields: dict[str, object] = {
        "name": "time",
        "transport": "stdio",
        "criticality": "optional",
        "state": S.ACTIVE,
        "since": 1.0,
    }
    fields.update(overrides)
    return ServerStatus(**fields)  # type: ignore[arg-type]


def test_status_defaults() -> None:
    status = _status()
    assert status.last_error is None
    assert status.last_error_type is None
    assert status.consecutive_failures == 0
    assert status.reconnect_attempts == 0
    assert status.tools == ()
    assert status.pid is None


@pytest.mark.parametrize(
    ("field", "value"), [("state", S.FAILED), ("tools", ("a",)), ("pid", 1), ("name", "x")]
)
def test_status_is_frozen(field: str, value: object) -> None:
    status = _status()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(status, field, value)


def test_status_has_no_instance_dict() -> None:
    status = _status()
    with pytest.raises((AttributeError, TypeError)):
        status.extra = 1  # type: ignore[attr-defined]
    # Frozen alone raises above too; only slots take away the per-instance dict.
    assert not hasattr(status, "__dict__")


def test_status_replace_makes_a_new_snapshot() -> None:
    before = _status()
    after = dataclasses.replace(before, state=S.RECONNECTING, last_error="boom")
    assert before.state is S.ACTIVE and before.last_error is None
    assert after.state is S.RECONNECTING and after.down
    assert before == _status()
    assert hash(before) == hash(_status())


def _tool(name: str, description: str) -> types.Tool:
    return types.Tool(name=name, description=description, input_schema={"type": "object"})


def test_offerings_default_to_empty_and_compare_by_content() -> None:
    assert _status().offerings == Offerings()
    assert Offerings().capabilities is None
    first = Offerings(tools=(_tool("read", "Read a file."),))
    assert first == Offerings(tools=(_tool("read", "Read a file."),))
    # Only the description differs: a different offering (a change the gateway must pass on).
    assert first != Offerings(tools=(_tool("read", "Read a file, now faster."),))


def test_a_status_with_offerings_is_still_hashable() -> None:
    """The SDK's models are not hashable; the status must stay usable as a key all the same."""
    offerings = Offerings(tools=(_tool("read", "one"),))
    status = _status(offerings=offerings)
    assert hash(status) == hash(_status(offerings=Offerings(tools=(_tool("read", "one"),))))
    assert {status: 1}[_status(offerings=offerings)] == 1
