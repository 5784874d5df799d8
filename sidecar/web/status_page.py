"""The status page at `/`: one row per server, complete without JavaScript, live with it.

`render_status_page` turns the `/health/mcp` document into the whole page. A small inline
script then re-reads `health/mcp` (relative, so the page also works behind a path prefix)
every 2 s and refills the rows with `textContent` only. Nothing is loaded from elsewhere,
and a Content-Security-Policy pinned to the hashes of the inline style and script keeps it
that way: even a server-provided string that got past escaping could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..state import ServerState

__all__ = ["STATES", "format_age", "render_status_page"]

STATES = tuple(state.value for state in ServerState)
REFRESH_MS = 2000  # how often the script re-reads health/mcp
FETCH_TIMEOUT_MS = 1500  # a hung sidecar marks the page stale instead of freezing it
NOSCRIPT_REFRESH_S = 5  # without JavaScript, the browser reloads the page instead
FIELDS = ("name", "meta", "state", "since", "last_error", "reconnect_attempts", "tools", "protocol_version")

_CSS = """
:root { color-scheme: light dark; font: 14px/1.4 system-ui, sans-serif; }
body { margin: 1.5rem; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
header p { margin: .2rem 0; }
table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #8884; vertical-align: top; }
th { font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.error { max-width: 40ch; overflow-wrap: anywhere; font: .85rem ui-monospace, monospace; }
[data-field=name] { font-weight: 600; } [data-field=meta] { opacity: .7; font-size: .85em; }
.badge, [data-field=state] { display: inline-block; padding: 0 .5rem; border-radius: .6rem; color: #fff;
  background: #6b7280; }
tr { border-left: 4px solid #6b7280; }
.s-connecting { --c: #2563eb; } .s-active { --c: #15803d; } .s-reconnecting { --c: #b45309; }
.s-failed { --c: #b91c1c; } .s-dropped { --c: #7e22ce; } .s-stopped { --c: #6b7280; }
tr[class^=s-] { border-left-color: var(--c); } tr[class^=s-] [data-field=state] { background: var(--c); }
.o-healthy { background: #15803d; } .o-degraded { background: #b45309; } .o-unhealthy { background: #b91c1c; }
#stale { color: #fff; background: #b91c1c; padding: 0 .4rem; }
body.stale table { opacity: .5; }
#live { display: none; } html[data-live] #live { display: inline; }
#gateway h2 { font-size: 1.05rem; margin: 1.5rem 0 0; }
"""

# Mirrors `_cells` below; fills a clone of the server-rendered <template> row.
_SCRIPT_SOURCE = """
(() => {
  "use strict";
  const REFRESH = {{REFRESH}}, TIMEOUT = {{TIMEOUT}};
  const STATES = {{STATES}};
  const $ = (id) => document.getElementById(id);
  // Ages are measured on the sidecar's clock, whatever the viewer's clock says.
  const skew = Number(document.body.dataset.now) * 1000 - Date.now();
  let lastGood = new Date();

  function age(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor(s % 3600 / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }

  function cells(s, now) {
    const info = s.server_info;
    return {
      name: [s.name],
      meta: [s.criticality + " \\u00b7 " + s.transport],
      state: [s.state],
      since: s.since ? [age(now - s.since), new Date(s.since * 1000).toISOString().slice(0, 19) + "Z"]
        : ["\\u2014"],
      last_error: [s.last_error || "\\u2014", s.last_error_type],
      reconnect_attempts: [String(s.reconnect_attempts), s.consecutive_failures + " failed probes in a row"],
      tools: [String((s.tools || []).length), (s.tools || []).join(", ") || null],
      protocol_version: [
        s.protocol_version || "\\u2014", info ? [info.name, info.version].filter(Boolean).join(" ") : null,
      ],
    };
  }

  function row(s, now) {
    const tr = $("row-template").content.firstElementChild.cloneNode(true);
    tr.dataset.server = s.name;
    tr.dataset.state = s.state;
    tr.className = "s-" + (STATES.includes(s.state) ? s.state : "unknown");
    for (const [field, [text, title]] of Object.entries(cells(s, now))) {
      const el = tr.querySelector('[data-field="' + field + '"]');
      el.textContent = text;
      if (title) el.title = title; else el.removeAttribute("title");
    }
    return tr;
  }

  function gateway(g) {
    if (!g || !$("gateway")) return;
    $("gw-sessions").textContent = gatewaySessions(g.sessions);
    $("gw-rows").replaceChildren(...Object.entries(g.servers).map(([name, c]) => {
      const tr = document.createElement("tr");
      const resources = c.resources + c.resource_templates;
      for (const text of [name, String(c.tools), String(c.prompts), String(resources)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      tr.title = c.tool_names.join(", ");
      return tr;
    }));
    $("gw-collisions").textContent = gatewayCollisions(g.collisions);
  }

  function gatewaySessions(s) {
    return s.legacy + " initialize-era sessions, " + s["2026-07-28"] + " 2026-07-28 listeners";
  }

  function gatewayCollisions(list) {
    if (!list.length) return "no name collisions";
    return "collisions: " + list.map((c) => c.kind + " " + c.exposed + " of " + c.loser
      + " (kept: " + c.winner + ")").join("; ");
  }

  function render(doc) {
    gateway(doc.gateway);
    const now = (Date.now() + skew) / 1000;
    const rows = doc.servers.map((s) => row(s, now));
    $("rows").replaceChildren(...(rows.length ? rows : [$("empty-template").content.cloneNode(true)]));
    $("status").textContent = doc.status;
    $("status").className = "badge o-" + doc.status;
    $("counts").textContent = doc.active_count + " of " + doc.total + " active";
    $("down").textContent = doc.failed.length ? "; down: " + doc.failed.join(", ") : "";
    document.title = "mcp-sidecar: " + doc.status + " (" + doc.active_count + "/" + doc.total + ")";
  }

  async function refresh() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT);
    try {
      const response = await fetch("health/mcp", {cache: "no-store", signal: abort.signal});
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      lastGood = new Date();
      $("updated").textContent = "updated " + lastGood.toLocaleTimeString();
      $("stale").hidden = true;
      document.body.classList.remove("stale");
    } catch (error) {
      const why = error.name === "AbortError" ? "no answer within " + TIMEOUT + " ms" : error.message;
      $("stale").textContent = "stale: cannot read health/mcp (" + why + "), showing data from "
        + lastGood.toLocaleTimeString();
      $("stale").hidden = false;
      document.body.classList.add("stale");
    } finally {
      clearTimeout(timer);
      setTimeout(refresh, REFRESH);
    }
  }

  document.documentElement.dataset.live = "";
  setTimeout(refresh, REFRESH);
})();
"""
_SCRIPT = (
    _SCRIPT_SOURCE.replace("{{REFRESH}}", str(REFRESH_MS))
    .replace("{{TIMEOUT}}", str(FETCH_TIMEOUT_MS))
    .replace("{{STATES}}", json.dumps(STATES))
)


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Only our own inline style and script may run; fetches go to our own origin only.
_CSP = (
    f"default-src 'none'; style-src {_sha256(_CSS)}; script-src {_sha256(_SCRIPT)}; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


def format_age(seconds: float) -> str:
    """`42s`, `3m 5s`, `2h 10m`, `4d 1h`: how long ago, as the page shows it."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _cells(server: Mapping[str, Any], now: float) -> dict[str, tuple[str, str | None]]:
    """Each field's text and tooltip: the same values the script computes."""
    since = float(server.get("since") or 0)
    when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tools = [str(tool) for tool in server.get("tools") or ()]
    info = server.get("server_info")
    return {
        "name": (str(server["name"]), None),
        "meta": (f"{server.get('criticality')} \u00b7 {server.get('transport')}", None),
        "state": (str(server.get("state")), None),
        "since": (format_age(now - since), when) if since else ("\u2014", None),
        "last_error": (server.get("last_error") or "\u2014", server.get("last_error_type")),
        "reconnect_attempts": (
            str(server.get("reconnect_attempts", 0)),
            f"{server.get('consecutive_failures', 0)} failed probes in a row",
        ),
        "tools": (str(len(tools)), ", ".join(tools) or None),
        "protocol_version": (
            server.get("protocol_version") or "\u2014",
            " ".join(str(part) for part in (info.get("name"), info.get("version")) if part) if info else None,
        ),
    }


def _attr(name: str, value: object) -> str:
    return f' {name}="{html.escape(str(value))}"'


def _cell(field: str, cells: Mapping[str, tuple[str, str | None]]) -> str:
    text, title = cells.get(field, ("", None))
    title_attr = _attr("title", title) if title else ""
    return f'<span data-field="{field}"{title_attr}>{html.escape(str(text))}</span>'


def _row(server: Mapping[str, Any] | None, now: float) -> str:
    """One server's <tr>; with `server=None`, the empty row the script clones."""
    cells = _cells(server, now) if server else {}
    attrs = ""
    if server:
        state = str(server.get("state"))
        attrs = (
            _attr("data-server", server["name"])
            + _attr("data-state", state)
            + _attr("class", "s-" + (state if state in STATES else "unknown"))
        )

    def td(*fields: str, cls: str = "") -> str:
        return (
            f"<td{_attr('class', cls) if cls else ''}>" + " ".join(_cell(f, cells) for f in fields) + "</td>"
        )

    return (
        f"<tr{attrs}>"
        + td("name", "meta")
        + td("state")
        + td("since")
        + td("last_error", cls="error")
        + td("reconnect_attempts", cls="num")
        + td("tools", cls="num")
        + td("protocol_version")
        + "</tr>"
    )


_EMPTY_ROW = '<tr class="empty"><td colspan="7">no servers configured</td></tr>'


def _gateway(report: Mapping[str, Any] | None) -> str:
    """What the gateway exposes, per server, and its collisions (the script refills the same ids)."""
    if not report:
        return ""
    e = html.escape
    sessions = report.get("sessions") or {}
    rows = "".join(
        f"<tr{_attr('title', ', '.join(counts.get('tool_names') or []))}><td>{e(str(name))}</td>"
        f"<td>{counts.get('tools', 0)}</td><td>{counts.get('prompts', 0)}</td>"
        f"<td>{counts.get('resources', 0) + counts.get('resource_templates', 0)}</td></tr>"
        for name, counts in (report.get("servers") or {}).items()
    )
    collisions = report.get("collisions") or []
    said = (
        "collisions: "
        + "; ".join(f"{c['kind']} {c['exposed']} of {c['loser']} (kept: {c['winner']})" for c in collisions)
        if collisions
        else "no name collisions"
    )
    legacy, modern = sessions.get("legacy", 0), sessions.get("2026-07-28", 0)
    listening = f"{legacy} initialize-era sessions, {modern} 2026-07-28 listeners"
    return f"""<section id="gateway">
<h2>Gateway</h2>
<p>http://{e(str(report.get("listen")))}{e(str(report.get("path")))} \u00b7
<span id="gw-sessions">{e(listening)}</span></p>
<table>
<thead><tr><th>server</th><th>tools exposed</th><th>prompts</th><th>resources</th></tr></thead>
<tbody id="gw-rows">{rows}</tbody>
</table>
<p id="gw-collisions">{e(said)}</p>
</section>
"""


def render_status_page(document: Mapping[str, Any], now: float | None = None) -> str:
    """The whole page for one `/health/mcp` document; `now` (unix seconds) is for the ages."""
    now = time.time() if now is None else now
    servers = list(document.get("servers") or [])
    status = str(document.get("status"))
    active, total = document.get("active_count", 0), document.get("total", len(servers))
    failed = [str(name) for name in document.get("failed") or ()]
    rows = "".join(_row(s, now) for s in servers) or _EMPTY_ROW
    down = html.escape("; down: " + ", ".join(failed)) if failed else ""
    rendered_at = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S UTC")
    e = html.escape
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<noscript><meta http-equiv="refresh" content="{NOSCRIPT_REFRESH_S}"></noscript>
<title>mcp-sidecar: {e(status)} ({e(str(active))}/{e(str(total))})</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style>
</head>
<body data-now="{now:.3f}">
<header>
<h1>mcp-sidecar</h1>
<p><span id="status" class="badge o-{e(status)}">{e(status)}</span>
<span id="counts">{e(str(active))} of {e(str(total))} active</span><span id="down">{down}</span></p>
<p><span id="updated">updated {rendered_at}</span>
<span id="live">· live, every {REFRESH_MS // 1000} s</span>
<noscript>· JavaScript is off: the page reloads every {NOSCRIPT_REFRESH_S} s</noscript>
<span id="stale" role="alert" hidden></span></p>
</header>
<table>
<thead><tr><th>server</th><th>state</th><th>since</th><th>last error</th><th>reconnects</th>
<th>tools</th><th>protocol</th></tr></thead>
<tbody id="rows">{rows}</tbody>
</table>
{_gateway(document.get("gateway"))}<template id="row-template">{_row(None, now)}</template>
<template id="empty-template">{_EMPTY_ROW}</template>
<script>{_SCRIPT}</script>
</body>
</html>
"""
