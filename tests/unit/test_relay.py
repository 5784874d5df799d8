"""The relay's decisions, without I/O: who is asked what a server asks, who hears its logs,
and when a resource subscription must be made or ended upstream."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import mcp_types as types
import pytest

from sidecar.relay import Relay, _Call, admits, choose_caller

A, B = object(), object()  # two client sessions (only their identity matters here)


def call(client: object, server: str = "s") -> _Call:
    return _Call(server=server, session=None, client=client, request_id=1, modern=False)  # type: ignore[arg-type]


def test_choose_caller() -> None:
    first, second, other = call(A), call(A), call(B)
    assert choose_caller([]) is None  # nobody is calling: nobody to ask
    assert choose_caller([first]) is first
    assert choose_caller([first, second]) is first  # one client's calls: its oldest call's stream
    assert choose_caller([first, other]) is None  # two clients: ambiguous, refused
    assert choose_caller([other, first, second]) is None


@pytest.mark.parametrize(
    ("wanted", "level", "admitted"),
    [
        (None, "debug", True),  # never asked: a call's own caller still hears it
        ("debug", "debug", True),
        ("warning", "info", False),
        ("warning", "error", True),
        ("emergency", "alert", False),
        ("bogus", "info", True),
    ],
)
def test_admits(wanted: str | None, level: str, admitted: bool) -> None:
    assert admits(wanted, level) is admitted


def relay() -> Relay:
    return Relay(lambda server: 1.0, lambda: ())


def test_one_upstream_subscription_however_many_clients_share_it() -> None:
    r: Any = relay()
    assert r.subscribe("s", "u://1", A, "x://s/u://1") is True  # the first: subscribe upstream
    assert r.subscribe("s", "u://1", B, "x://s/u://1") is False
    assert r.subscribe("s", "u://1", A, "x://s/u://1") is False  # again: still one
    assert r.unsubscribe("s", "u://1", A) is False  # B still holds it
    assert r.unsubscribe("s", "u://1", A) is False  # not subscribed any more: nothing to do
    assert r.unsubscribe("s", "u://1", B) is True  # the last: unsubscribe upstream


def test_a_client_that_leaves_releases_what_only_it_held() -> None:
    r: Any = relay()
    r.subscribe("s", "u://1", A, "e1")
    r.subscribe("s", "u://2", A, "e2")
    r.subscribe("s", "u://2", B, "e2")
    r.subscribe("t", "u://1", A, "e3")
    assert sorted(r.subscribed("s")) == ["u://1", "u://2"]  # what a restarted server is asked again
    assert sorted(r.forget(A)) == [("s", "u://1"), ("t", "u://1")]
    assert r.subscribed("s") == ["u://2"] and r.subscribed("t") == []
    assert r.forget(A) == []
    assert r.forget(B) == [("s", "u://2")]


@pytest.mark.anyio
async def test_roots_asked_with_no_call_in_flight_are_refused_clearly() -> None:
    """A server asking for roots at connect (server-everything does) has no caller to ask."""
    refused = await relay().roots("s", None)  # type: ignore[arg-type]
    assert isinstance(refused, types.ErrorData)
    assert refused.message == "the gateway cannot relay roots/list from 's': no call in flight"


def ctx(client: object, request_id: int, protocol_version: str = "2025-11-25") -> Any:
    """A request context as far as `in_call` reads it: its session (whose connection is the
    client), its request id and its era."""
    return SimpleNamespace(
        session=SimpleNamespace(_connection=client), request_id=request_id, protocol_version=protocol_version
    )


@pytest.mark.anyio
async def test_in_call_notes_a_call_while_its_block_runs() -> None:
    r: Any = relay()
    assert r.caller("s") is None
    async with r.in_call(ctx(A, 1), "s"):
        first = r.caller("s")
        assert first is not None and (first.client, first.request_id, first.modern) == (A, 1, False)
        async with r.in_call(ctx(A, 2), "s"):
            assert r.caller("s") is first  # one client's calls: its oldest is asked
        async with r.in_call(ctx(B, 3, "2026-07-28"), "s"):
            assert r.caller("s") is None  # two clients' calls: nobody is
        assert r.caller("s") is first
    assert r.caller("s") is None and r._calls == {}  # nothing left behind


@pytest.mark.anyio
async def test_in_call_forgets_a_call_that_failed_or_was_cancelled() -> None:
    r: Any = relay()
    with pytest.raises(RuntimeError):
        async with r.in_call(ctx(A, 1), "s"):
            raise RuntimeError("the upstream went away")
    assert r._calls == {}
    with anyio.move_on_after(0.01):
        async with r.in_call(ctx(A, 2), "t"):
            await anyio.sleep_forever()
    assert r._calls == {}
