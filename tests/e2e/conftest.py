"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from .harness import sidecars

__all__ = ["sidecars"]
