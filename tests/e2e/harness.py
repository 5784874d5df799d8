"""Running the real `mcp-sidecar` command in tests: configs, the process, its health."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import BEHAVING, LOCALHOST, REPO, alive, free_port, wait_for

if TYPE_CHECKING:
    from conftest import LeakGuard

__all__ = [
    "BEHAVING",
    "CLI",
    "REPO",
    "SidecarProcess",
    "Sidecars",
    "alive",
    "free_port",
    "health",
    "sidecars",
    "stdio_server",
    "wait_for",
    "write_config",
]

CLI = [sys.executable, "-m", "sidecar"]
Sidecars = Callable[..., "SidecarProcess"]  # the `sidecars` fixture: start one from a config


def health(port: int) -> dict | None:
    """The `/health/mcp` document, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/health/mcp", timeout=1) as response:
            return json.load(response)
    except OSError:
        return None


def write_config(tmp_path: Path, port: int, servers: str, sidecar_extra: str = "") -> Path:
    config = tmp_path / "sidecar.yaml"
    if "gateway:" not in sidecar_extra:  # never the default port: parallel sidecars would share it
        sidecar_extra += f"  gateway: {{listen: {LOCALHOST}:{free_port()}}}\n"
    config.write_text(
        f"sidecar:\n  listen: {LOCALHOST}:{port}\n{sidecar_extra}"
        "defaults:\n  connect_timeout: 10s\n  health: {interval: 500ms, timeout: 1s}\n"
        "  reconnect: {initial_backoff: 100ms, max_backoff: 500ms}\n"
        f"servers:\n{servers}"
    )
    return config


def stdio_server(name: str, pidfile: Path, *flags: str, critical: bool = False) -> str:
    args = ", ".join(json.dumps(a) for a in [str(BEHAVING), "--pidfile", str(pidfile), *flags])
    criticality = "critical" if critical else "optional"
    return (
        f"  - {{name: {name}, transport: stdio, command: {json.dumps(sys.executable)}, "
        f"args: [{args}], criticality: {criticality}}}\n"
    )


class SidecarProcess:
    """`mcp-sidecar run -c CONFIG` as a user starts it. Its log lines go to a file next to
    the config: a pipe nobody reads until the end could fill up and block the sidecar."""

    def __init__(
        self, config: Path, *, env: Mapping[str, str] | None = None, log_format: str = "json"
    ) -> None:
        self.log = config.with_suffix(".log")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*CLI, "run", "-c", str(config), "--log-format", log_format],
                cwd=REPO,
                env=None if env is None else {**env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> str:
        """Send `sig`, wait up to `timeout` s (then SIGKILL by pid), and return the log lines."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.logs()


@pytest.fixture
def sidecars(leak_guard: LeakGuard) -> Iterator[Callable[..., SidecarProcess]]:
    """`sidecars(config, env=..., log_format=...)` starts one; each still running is stopped
    (SIGTERM, then SIGKILL) at teardown, before the leak guard looks."""
    started: list[SidecarProcess] = []

    def start(config: Path, **options: object) -> SidecarProcess:
        started.append(SidecarProcess(config, **options))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for sidecar in started:
        sidecar.stop()
