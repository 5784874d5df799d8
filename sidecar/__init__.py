"""mcp-sidecar: supervises an agent's MCP servers and tells the truth about them."""

from importlib.metadata import PackageNotFoundError, version

from .config import ConfigError, ServerConfig, SidecarConfig, load_config, parse_config
from .errors import ServerUnavailable, SidecarError, StartupError, ToolCallError, ToolCallTimeout
from .events import LifecycleEvent, Subscription
from .manager import MCPServerManager
from .state import ServerState, ServerStatus

try:
    __version__ = version("mcp-sidecar")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "ConfigError",
    "LifecycleEvent",
    "MCPServerManager",
    "ServerConfig",
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
