"""The server lifecycle as data: states, legal transitions and the status snapshot.

Pure: no I/O, no clock. The supervisor is the only writer; every view (metrics,
health JSON, logs, the gateway's tool list) reads `ServerStatus` snapshots.

    connecting ──► active ──► reconnecting ──► active
        │                        │   ▲
        └──────► reconnecting    ▼   │ (manual reconnect)
                               failed ──► dropped
    any state ──► stopped (shutdown)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: `mcp-sidecar check` must not pay for importing the SDK's types
    import mcp_types as types

__all__ = ["IllegalTransition", "Offerings", "ServerState", "ServerStatus", "check_transition", "is_down"]


class ServerState(enum.StrEnum):
    """Where a server is in its lifecycle. The values are the contract's `state` label."""

    CONNECTING = "connecting"  # first connect attempt since start
    ACTIVE = "active"  # connected and healthy; the only state that serves calls
    RECONNECTING = "reconnecting"  # lost or never connected; backing off or retrying
    FAILED = "failed"  # gave up after the last attempt, kept for inspection
    DROPPED = "dropped"  # given up and removed from service (by policy or by hand)
    STOPPED = "stopped"  # shut down with the sidecar


_S = ServerState

# Which states may follow which. A self-transition is never a state change.
_LEGAL: dict[ServerState, frozenset[ServerState]] = {
    _S.CONNECTING: frozenset({_S.ACTIVE, _S.RECONNECTING, _S.FAILED, _S.DROPPED, _S.STOPPED}),
    _S.ACTIVE: frozenset({_S.RECONNECTING, _S.FAILED, _S.DROPPED, _S.STOPPED}),
    _S.RECONNECTING: frozenset({_S.ACTIVE, _S.FAILED, _S.DROPPED, _S.STOPPED}),
    _S.FAILED: frozenset({_S.RECONNECTING, _S.DROPPED, _S.STOPPED}),
    _S.DROPPED: frozenset({_S.RECONNECTING, _S.STOPPED}),
    _S.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A supervisor tried a transition the lifecycle does not allow: a bug, never a server fault."""


def check_transition(current: ServerState, new: ServerState) -> None:
    """Raise `IllegalTransition` unless `current` may become `new`."""
    if new not in _LEGAL[current]:
        raise IllegalTransition(f"{current.value} -> {new.value} is not a legal transition")


def is_down(state: ServerState) -> bool:
    """A server that should be up but is not: what `failed_servers` and the failed gauge count."""
    return state in (ServerState.RECONNECTING, ServerState.FAILED)


@dataclass(frozen=True, slots=True)
class Offerings:
    """What a server offers, as it described it (full objects: descriptions, schemas, annotations,
    icons, _meta untouched); the last list the supervisor fetched."""

    tools: tuple[types.Tool, ...] = ()
    prompts: tuple[types.Prompt, ...] = ()
    resources: tuple[types.Resource, ...] = ()
    resource_templates: tuple[types.ResourceTemplate, ...] = ()
    capabilities: types.ServerCapabilities | None = None  # what the server declared

    def __hash__(self) -> int:
        # The SDK's models are unhashable; equal offerings have equal names, so names make a valid
        # hash, and a `ServerStatus` stays usable as a key.
        return hash(
            (
                tuple(tool.name for tool in self.tools),
                tuple(prompt.name for prompt in self.prompts),
                tuple(str(resource.uri) for resource in self.resources),
                tuple(template.uri_template for template in self.resource_templates),
            )
        )


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """One server's state at one moment; immutable, so any reader may keep it."""

    name: str
    transport: str
    criticality: str
    state: ServerState
    since: float  # unix time of the last transition
    last_error: str | None = None
    last_error_type: str | None = None
    consecutive_failures: int = 0  # failed health probes in a row
    reconnect_attempts: int = 0  # reconnect attempts since the sidecar started
    tools: tuple[str, ...] = ()
    protocol_version: str | None = None
    server_name: str | None = None  # serverInfo.name reported at connect
    server_version: str | None = None
    pid: int | None = None  # stdio child process while connected
    offerings: Offerings = Offerings()  # `tools` above are the names of `offerings.tools`

    @property
    def active(self) -> bool:
        return self.state is ServerState.ACTIVE

    @property
    def down(self) -> bool:
        return is_down(self.state)
