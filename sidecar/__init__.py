"""mcp-sidecar: supervises an agent's MCP servers and tells the truth about them.

The public names are loaded on first use: `import sidecar` (and so `mcp-sidecar
--version` and `check`) stays cheap, and the mcp SDK, OpenTelemetry and aiohttp are
imported only by what needs them (`MCPServerManager` pulls in the SDK).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ConfigError, ServerConfig, SidecarConfig, load_config, parse_config
    from .errors import (
        ServerFailure,
        ServerUnavailable,
        SidecarError,
        StartupError,
        ToolCallError,
        ToolCallTimeout,
    )
    from .events import LifecycleEvent, Subscription
    from .manager import MCPServerManager
    from .state import ServerState, ServerStatus

    __version__: str

# public name -> the module that defines it
_HOMES = {
    "ConfigError": "config",
    "LifecycleEvent": "events",
    "MCPServerManager": "manager",
    "ServerConfig": "config",
    "ServerState": "state",
    "ServerStatus": "state",
    "ServerFailure": "errors",
    "ServerUnavailable": "errors",
    "SidecarConfig": "config",
    "SidecarError": "errors",
    "StartupError": "errors",
    "Subscription": "events",
    "ToolCallError": "errors",
    "ToolCallTimeout": "errors",
    "load_config": "config",
    "parse_config": "config",
}

__all__ = [
    "ConfigError",
    "LifecycleEvent",
    "MCPServerManager",
    "ServerConfig",
    "ServerFailure",
    "ServerState",
    "ServerStatus",
    "ServerUnavailable",
    "SidecarConfig",
    "SidecarError",
    "StartupError",
    "Subscription",
    "ToolCallError",
    "ToolCallTimeout",
    "__version__",
    "load_config",
    "parse_config",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._version import sidecar_version

        value: Any = sidecar_version()
    elif name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # loaded once; later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
