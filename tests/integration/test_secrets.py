"""Secrets from env and headers never show up in statuses, errors, events or log lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from support import free_port

from sidecar import MCPServerManager, parse_config
from sidecar.telemetry.logs import format_json, format_text

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

CANARIES = ("canary-secret-123456", "canary-secret-abcdef", "canary-secret-pw9876")
# Prints its token to stderr and dies: the stderr tail goes into last_error, so it must be masked.
LEAKY = "import os, sys; sys.stderr.write('token is ' + os.environ['API_TOKEN'] + '\\n'); sys.exit(3)"


async def test_canaries_appear_nowhere(
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[..., bool]],
    leak_guard: LeakGuard,
) -> None:
    port = free_port()
    document = {
        "defaults": {
            "connect_timeout": "2s",
            "health": {"interval": "200ms", "timeout": "500ms"},
            "reconnect": {
                "initial_backoff": "50ms",
                "max_backoff": "100ms",
                "max_attempts": 1,
                "on_give_up": "keep",
            },
        },
        "servers": [
            {
                "name": "stdio-env",
                "transport": "stdio",
                "command": sys.executable,
                "args": ["-c", LEAKY],
                "env": {"API_TOKEN": CANARIES[0]},
            },
            {
                "name": "http-header",
                "transport": "streamable-http",
                "url": f"http://127.0.0.1:{port}/mcp",
                "headers": {"Authorization": f"Bearer {CANARIES[1]}"},
            },
            {
                "name": "sse-userinfo",
                "transport": "sse",
                "url": f"http://agent:{CANARIES[2]}@127.0.0.1:{port}/sse",
            },
        ],
    }
    config = parse_config(json.dumps(document), "secrets-test")
    manager = MCPServerManager(config)
    events = watch(manager)
    async with manager:
        for server in manager.all_servers:
            await events.wait_for(is_event(server.name, "gave_up"), timeout=5)
        statuses = manager.statuses()
        errors = {name: str(error) for name, error in manager.errors.items()}
    everything = events.drain()

    assert set(errors) == {s.name for s in manager.all_servers}, errors
    # The secret really was in the stderr tail: masked, not missing.
    assert "token is ***" in errors["stdio-env"], errors["stdio-env"]
    assert "exited with code 3" in errors["stdio-env"]
    assert errors["http-header"].startswith("cannot connect"), errors["http-header"]
    outputs = [
        *(repr(status) for status in statuses),
        *(repr(status) for status in manager.statuses()),
        *errors.values(),
        *(repr(event) for event in everything),
        *(format_json(event) for event in everything),
        *(format_text(event) for event in everything),
    ]
    assert len(everything) > 6
    for canary in CANARIES:
        leaked = [text for text in outputs if canary in text]
        assert not leaked, f"{canary} leaked into: {leaked}"
    leak_guard.assert_clean()
