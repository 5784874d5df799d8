"""The status page at `/` (being written: helper replaces this placeholder)."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["render_status_page"]


def render_status_page(document: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr data-server="{html.escape(s["name"])}" data-state="{s["state"]}">'
        f"<td>{html.escape(s['name'])}</td><td>{s['state']}</td></tr>"
        for s in document["servers"]
    )
    return f"<!doctype html><title>mcp-sidecar</title><table>{rows}</table>"
