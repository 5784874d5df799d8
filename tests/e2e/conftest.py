"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from .harness import sidecar_process

__all__ = ["sidecar_process"]
