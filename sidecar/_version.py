"""The versions of mcp-sidecar and of the mcp SDK, read from package metadata.

Cheap (no import of the packages themselves), so `mcp-sidecar --version` stays fast, and
never fatal: a source tree that was never installed has no metadata and reports 0.0.0.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

__all__ = ["UNKNOWN_VERSION", "mcp_version", "sidecar_version"]

UNKNOWN_VERSION = "0.0.0"


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return UNKNOWN_VERSION


@cache
def sidecar_version() -> str:
    """This package's version; 0.0.0 when run from a source tree that was never installed."""
    return _installed("mcp-sidecar")


@cache
def mcp_version() -> str:
    """The installed mcp SDK's version."""
    return _installed("mcp")
