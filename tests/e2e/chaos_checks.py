"""What the chaos run checks, as pure functions of its samples (no I/O, no clock).

Invariants hold for every single sample of `/health/mcp` and `/metrics`; expectations say
what each fault must have done by the end of the run, measured from a scrape taken when
the faults began. A test feeds them broken samples to see that they can fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "STATES",
    "Expect",
    "Scrape",
    "counter_regressions",
    "health_violations",
    "healthy_violations",
    "metrics_violations",
    "unmet",
]

STATES = ("connecting", "active", "reconnecting", "failed", "dropped", "stopped")
_COUNTERS = (
    "mcp_server_reconnect_attempts_total",
    "mcp_server_reconnect_failures_total",
    "mcp_server_disconnects_total",
    "mcp_server_health_check_failures_total",
    "mcp_server_connect_duration_seconds_count",
    "mcp_tool_calls_total",
    "mcp_tool_call_errors_total",
)
Labels = tuple[tuple[str, str], ...]


class Scrape:
    """One `/metrics` exposition, parsed by prometheus-client's own parser.

    `buckets=False` drops the histogram buckets before parsing: they are most of the lines,
    no check reads them, and the (pure Python) parse takes a third of the time without
    them, which matters to a poller parsing ten scrapes a second on a two-core host.
    """

    def __init__(self, text: str, buckets: bool = True) -> None:
        if not buckets:
            text = "\n".join(line for line in text.split("\n") if "_bucket{" not in line)
        self.samples: dict[tuple[str, Labels], float] = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def total(self, name: str, server: str, **labels: str) -> float:
        """The sum of `name` over the series of `server` that have all of `labels`."""
        wanted = {("server", server), *labels.items()}
        return sum(v for (sample, have), v in self.samples.items() if sample == name and wanted <= set(have))

    def state(self, server: str) -> str | None:
        """The state whose `mcp_server_state` series is 1 (None unless exactly one is)."""
        ones = [s for s in STATES if self.value("mcp_server_state", server=server, state=s) == 1]
        return ones[0] if len(ones) == 1 else None


# -- invariants of one sample ------------------------------------------------------------------


def health_violations(doc: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """What is wrong with one `/health/mcp` document: every configured server exactly once, in
    one known state, and `active_count` + the others = `total`, with `active` and `failed`
    naming the right servers."""
    names = sorted(names)
    servers = doc.get("servers", [])
    problems = []
    listed = sorted(str(s.get("name")) for s in servers)
    if listed != names:
        problems.append(f"servers {listed} are not the configured {names}")
    by_state: dict[str, list[str]] = {state: [] for state in STATES}
    for server in servers:
        if server.get("state") in by_state:
            by_state[server["state"]].append(server["name"])
        else:
            problems.append(f"{server.get('name')}: unknown state {server.get('state')!r}")
    counted = sum(len(members) for members in by_state.values())
    if not doc.get("total") == counted == len(names):
        problems.append(f"total {doc.get('total')}, {counted} servers by state, {len(names)} configured")
    active = sorted(by_state["active"])
    if doc.get("active_count") != len(active) or sorted(doc.get("active", [])) != active:
        problems.append(
            f"active_count {doc.get('active_count')}, active {doc.get('active')}: states say {active}"
        )
    down = sorted(by_state["reconnecting"] + by_state["failed"])
    if sorted(doc.get("failed", [])) != down:
        problems.append(f"failed {doc.get('failed')}: states say {down} (reconnecting or failed)")
    return problems


def metrics_violations(scrape: Scrape, names: Iterable[str]) -> list[str]:
    """What is wrong with one scrape: each server's `mcp_server_state` is one 1 and five 0s,
    `mcp_server_up` agrees with it, and the totals are the counts of those states."""
    names = list(names)
    problems = []
    active = down = 0
    for name in names:
        values = [scrape.value("mcp_server_state", server=name, state=s) for s in STATES]
        if sorted(values, key=str) != sorted([1.0] + [0.0] * (len(STATES) - 1), key=str):
            problems.append(f"{name}: mcp_server_state is not one 1 and {len(STATES) - 1} 0s: {values}")
            continue
        state = scrape.state(name)
        active += state == "active"
        down += state in ("reconnecting", "failed")
        up = [
            v
            for (sample, labels), v in scrape.samples.items()
            if sample == "mcp_server_up" and ("server", name) in labels
        ]
        if up != [1.0 if state == "active" else 0.0]:
            problems.append(f"{name}: mcp_server_up {up} in state {state}")
    for gauge, counted in (("mcp_servers_active", active), ("mcp_servers_failed", down)):
        if scrape.value(gauge) != counted:
            problems.append(f"{gauge} {scrape.value(gauge)}: mcp_server_state says {counted}")
    if scrape.value("mcp_servers_configured") != len(names):
        problems.append(f"mcp_servers_configured {scrape.value('mcp_servers_configured')} != {len(names)}")
    return problems


def counter_regressions(before: Scrape, after: Scrape) -> list[str]:
    """Counters of one sidecar never go down from one scrape to the next."""
    problems = []
    for (name, labels), value in before.samples.items():
        now = after.samples.get((name, labels))
        if name in _COUNTERS and now is not None and now < value:
            problems.append(f"{name}{dict(labels)} went down: {value:g} -> {now:g}")
    return problems


def healthy_violations(scrape: Scrape, server: str) -> list[str]:
    """A healthy server, once active, stays so: up, no failed probe, no loss, no reconnect."""
    problems = []
    if scrape.state(server) != "active":
        problems.append(f"{server} is {scrape.state(server)}")
    for counter, what in (
        ("mcp_server_health_check_failures_total", "failed probes"),
        ("mcp_server_disconnects_total", "disconnects"),
        ("mcp_server_reconnect_attempts_total", "reconnect attempts"),
    ):
        if count := scrape.total(counter, server):
            problems.append(f"{server}: {count:g} {what}")
    return problems


# -- what each fault must have done --------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """The effect a fault must have had by the end of the run.

    up: never lost (the fault costs a call, not the connection); recovers: lost (for
    `reason`, if given), then active again on a new connection; down: lost, and not back;
    loops: lost at least `times` times; never: never active, at least `times` failed attempts.
    """

    kind: Literal["up", "recovers", "down", "loops", "never"]
    reason: str | None = None  # a disconnect reason of the contract's fixed set
    times: int = 1

    def describe(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return {
            "up": "stays active, never lost",
            "recovers": f"lost{reason}, then active again on a new connection",
            "down": f"lost{reason}, and not back",
            "loops": f"lost{reason} at least {self.times} times",
            "never": f"never active, at least {self.times} failed attempts",
        }[self.kind]


def unmet(expect: Expect, server: str, before: Scrape, now: Scrape, ever: set[str]) -> str | None:
    """None if `server` did what `expect` says between the scrapes `before` and `now` (`ever`:
    every state it was seen in); else what it did instead."""

    def grew(name: str, **labels: str) -> float:
        return now.total(name, server, **labels) - before.total(name, server, **labels)

    reasons = {"reason": expect.reason} if expect.reason else {}
    lost = grew("mcp_server_disconnects_total", **reasons)
    connects = grew("mcp_server_connect_duration_seconds_count")
    state = now.state(server)
    met = {
        "up": state == "active" and grew("mcp_server_disconnects_total") == 0,
        "recovers": state == "active" and lost >= 1 and connects >= 1,
        "down": state != "active" and lost >= 1,
        "loops": lost >= expect.times,
        "never": "active" not in ever and grew("mcp_server_reconnect_failures_total") >= expect.times,
    }[expect.kind]
    if met:
        return None
    every_reason = {
        dict(labels)["reason"]: v - before.samples.get((name, labels), 0.0)
        for (name, labels), v in now.samples.items()
        if name == "mcp_server_disconnects_total" and ("server", server) in labels and v
    }
    return (
        f"expected: {expect.describe()}; saw: state {state}, lost {every_reason or 0}, "
        f"{connects:g} new connections, states seen {sorted(ever)}"
    )
