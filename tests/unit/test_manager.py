"""The manager's pure parts: what a reload changes, and the awaitable result of a drop."""

from __future__ import annotations

import sys

import anyio
import pytest

from sidecar.config import ServerConfig
from sidecar.manager import Dropping, plan_reload


def stdio(name: str, *args: str) -> ServerConfig:
    return ServerConfig(name=name, transport="stdio", command=sys.executable, args=list(args))


def test_plan_reload_adds_removes_restarts_and_keeps_in_config_order() -> None:
    current = {"a": stdio("a"), "b": stdio("b"), "c": stdio("c"), "d": stdio("d")}
    wanted = {"e": stdio("e"), "d": stdio("d", "-v"), "b": stdio("b"), "a": stdio("a", "-v")}
    assert plan_reload(current, wanted) == {"added": ["e"], "removed": ["c"], "restarted": ["a", "d"]}


def test_plan_reload_of_the_same_config_changes_nothing() -> None:
    current = {"a": stdio("a"), "b": stdio("b")}
    same = {"a": stdio("a"), "b": stdio("b")}  # equal, not the same objects: a re-read file
    assert plan_reload(current, same) == {"added": [], "removed": [], "restarted": []}


def test_plan_reload_sees_a_change_in_any_field() -> None:
    current = {"a": stdio("a")}
    wanted = {"a": stdio("a").model_copy(update={"criticality": "critical"})}
    assert plan_reload(current, wanted)["restarted"] == ["a"]


@pytest.mark.anyio
async def test_dropping_is_a_list_now_and_waits_when_awaited() -> None:
    settled = anyio.Event()

    async def settle() -> None:
        settled.set()

    dropping = Dropping(iter(["x", "y"]), settle)
    assert dropping == ["x", "y"] and not settled.is_set()  # the names, without awaiting
    names = await dropping
    assert settled.is_set()
    assert names == ["x", "y"] and type(names) is list
