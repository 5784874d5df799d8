"""stdio servers are never started through a shell: command, args and env arrive verbatim.

A command line full of shell syntax is one program name that does not exist ("command not found",
and the file it would have touched is never made); args and env values full of shell syntax reach
the real program as they were written, one argv entry each, and nothing in them runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sidecar import MCPServerManager, ServerConfig

if TYPE_CHECKING:
    from conftest import EventLog, LeakGuard

pytestmark = pytest.mark.anyio

GIVE_UP = {"max_attempts": 1, "on_give_up": "keep", "initial_backoff": 0.05, "max_backoff": 0.05}


def shell_lines(marker: Path) -> list[str]:
    """Ways a shell would run `touch MARKER`; run as argv, each is inert text."""
    m = str(marker)
    return [
        f"echo hi; touch {m}",
        f"$(touch {m})",
        f"`touch {m}`",
        f"true | touch {m}",
        f"true && touch {m}",
        f"true\ntouch {m}",
        f"sh -c 'touch {m}'",
        f"> {m}",
    ]


async def test_a_command_with_shell_syntax_is_one_program_name_that_is_not_found(
    tmp_path: Path,
    server_config: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[..., bool]],
    leak_guard: LeakGuard,
) -> None:
    marker = tmp_path / "pwned"
    commands = shell_lines(marker)
    configs = [
        server_config(f"s{i}", command=command, reconnect=GIVE_UP) for i, command in enumerate(commands)
    ]
    manager = MCPServerManager(configs)
    events = watch(manager)
    async with manager:
        for config in configs:
            await events.wait_for(is_event(config.name, "gave_up"), timeout=10)
        statuses = {status.name: status for status in manager.statuses()}
    for config in configs:
        status = statuses[config.name]
        assert status.last_error_type == "spawn_error", status
        assert status.last_error == f"command not found: {config.command}", status
    assert not marker.exists()
    leak_guard.assert_clean()


# Records what it was given, then exits: the test reads argv and env back from the file.
RECORDER = "import json, os, sys; json.dump({'argv': sys.argv[1:], 'env': os.environ['PROBE']}, open(os.environ['OUT'], 'w')); sys.exit(3)"  # noqa: E501


async def test_args_and_env_with_shell_syntax_arrive_verbatim_and_run_nothing(
    tmp_path: Path,
    server_config: Callable[..., ServerConfig],
    watch: Callable[[MCPServerManager], EventLog],
    is_event: Callable[..., Callable[..., bool]],
    leak_guard: LeakGuard,
) -> None:
    marker, out = tmp_path / "pwned", tmp_path / "argv.json"
    args = [*shell_lines(marker), "$HOME", "*", "~", "'single'", '"double"', "a b", "", "--", "-c", "é🙂"]
    probe = f"$(touch {marker}); `touch {marker}`"
    config = server_config(
        "recorder",
        command=sys.executable,
        args=["-c", RECORDER, *args],
        env={"OUT": str(out), "PROBE": probe},
        reconnect=GIVE_UP,
    )
    manager = MCPServerManager([config])
    events = watch(manager)
    async with manager:
        await events.wait_for(is_event("recorder", "gave_up"), timeout=15)
        assert "exited with code 3" in (manager.status("recorder").last_error or "")
    recorded = json.loads(out.read_text())
    assert recorded == {"argv": args, "env": probe}  # one entry each, byte for byte
    assert not marker.exists()
    leak_guard.assert_clean()
