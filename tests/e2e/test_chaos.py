"""Chaos, per transport, through the real CLI: faulty servers beside healthy ones (tests/e2e/chaos.py).

One `mcp-sidecar run` supervises 32 servers over stdio, streamable HTTP and SSE. Each
faulty one shows one fault: SIGKILL; SIGSTOP then SIGCONT; a crash loop; a crash or a
hang during the handshake; garbage on stdout; a 10 MB answer; a call slower than its
deadline; HTTP 500; a restart that loses the session (404); connection refused; an answer
cut in the middle of a call. Throughout, `/livez`, `/metrics` and `/health/mcp` are read
every 100-250 ms and every sample is checked; the healthy servers must never notice, not
even through the gateway, where four concurrent callers call every server during the faults.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .chaos import SLOW_CALL, Chaos
from .chaos_checks import (
    Expect,
    Scrape,
    counter_regressions,
    health_violations,
    healthy_violations,
    metrics_violations,
    unmet,
)
from .harness import Sidecars

if TYPE_CHECKING:
    from conftest import Service

# The claim is 100 ms; its benchmark (benchmarks/bench_chaos.py) measures that. Here:
# 1 s of the sidecar's own time. On a crowded two-core host its loop waits for a CPU most of
# the time it wants one (53-81% in the benchmark's runs), which stretches every answer by the
# same factor, so the bound is stretched by it too (from /proc/PID/schedstat over the faults),
# up to a hard ceiling. A loop blocked for a second still fails on a quiet host.
LATENCY_BOUND = 1.0
LATENCY_CEILING = 5.0


@pytest.mark.timeout(150)  # startup <= 60 s and settling <= 30 s even on a crowded host; ~35 s usually
def test_a_sidecar_under_fire_keeps_answering_and_counting(
    tmp_path: Path, services: Callable[..., Service], sidecars: Sidecars
) -> None:
    spawn = lambda argv, port: services(argv, port=port).spawn()  # noqa: E731
    report = Chaos(tmp_path, spawn, sidecars, say=print).run(startup_timeout=60, settle_timeout=30)
    calls, timeline = report.calls, "\n".join(f"{t:6.2f}s {step}" for t, step in report.steps)
    assert report.up_at, f"the servers that can connect never were all active:\n{timeline}"

    # Every fault had its effect, and no other.
    assert not report.unmet, "\n".join(f"{name}: {text}" for name, text in report.unmet.items())

    # Every sample of every endpoint: invariants held, answers came, and came quickly.
    assert not report.violations, "\n".join(report.violations[:20])
    stretch = (report.sidecar_ran + report.sidecar_waited) / max(report.sidecar_ran, 1e-3)
    bound = min(LATENCY_BOUND * stretch, LATENCY_CEILING)
    for path in ("/livez", "/metrics"):
        assert not report.failures[path], report.failures[path][:5]
        during = report.latencies_between(path, *report.faults)
        assert len(during) >= report.faults[1] - report.faults[0], (
            f"{path}: {len(during)} samples in the faults"
        )
        assert max(during) < bound, f"{path}: {max(during):.2f}s (bound {bound:.2f}s):\n{timeline}"
        when, slowest = max(report.latencies[path], key=lambda sample: sample[1])
        assert slowest < LATENCY_CEILING, f"{path}: {slowest:.2f}s at {when:.2f}s of the run:\n{timeline}"
    assert report.samples["/health/mcp"] >= 20

    # The calls that drove the faults answered as each fault implies.
    for name in ("big-stdio", "big-http", "big-http-legacy"):
        assert calls[name].status == 200 and calls[name].text() == "x" * 10_000_000, calls[name].body[:200]
    for name in ("slow-stdio", "slow-http", "slow-sse"):  # call_timeout 1 s; the tool sleeps SLOW_CALL
        assert calls[name].status == 504 and calls[name].seconds < 1.0 + LATENCY_CEILING < SLOW_CALL, (
            calls[name].status,
            calls[name].seconds,
        )
    for name in ("hangup-stdio", "hangup-http", "hangup-http-legacy", "big-sse"):
        assert calls[name].status == 502, (name, calls[name].status, calls[name].body)
    assert calls["garbage-stdio"].text() == "ok"
    assert calls["e500-http"].status == 200  # the last call before its 500s
    # A restart behind the same port: the sidecar started a new session with the new process. A
    # call made meanwhile met the 404 on the old session (the server's JSON-RPC error), or the
    # server reconnecting, or the new session already.
    for name in ("gone-http", "gone-http-nostream"):
        new_pid = report.pids[name][-1]
        assert len(report.pids[name]) == 2
        assert calls[f"{name}/after"].json()["structuredContent"]["result"] == new_pid
        meanwhile = calls[name]
        assert meanwhile.status in (502, 503) or meanwhile.json()["structuredContent"]["result"] == new_pid
    # Without an event stream only a probe can tell: its 404 ends the session at the first one
    # (the scenario's Expect checks the reason, probe_error), not after the failure threshold.
    assert len(report.pids["kill-stdio"]) >= 2

    # Through the gateway, four concurrent callers (two per era) all along the faults: the
    # healthy servers answered every call; a faulty one failed, if at all, as a gateway should
    # (an error result naming it, or its own JSON-RPC error), never by a hang or a lost session.
    assert not report.gateway_sessions_failed, report.gateway_sessions_failed
    served: dict[str, int] = {}
    for call in report.gateway_calls:
        server = call.tool.split("__")[0]
        served[server] = served.get(server, 0) + 1
        assert call.outcome not in ("hang", "broken"), call
        if server in report.healthy:
            assert (call.outcome, call.text) == ("ok", f"through the gateway to {server}"), call
        elif call.outcome == "error_result":
            assert f"'{server}'" in call.text, call
    assert all(served.get(name, 0) >= 3 for name in report.healthy), served
    assert len(served) >= len(report.names) // 2, served  # the callers reached most servers
    # Once the faults settled, it offered the tools of the servers that were up, and no others.
    exposed = {tool.removesuffix("__echo") for tool in report.gateway_tools if tool.endswith("__echo")}
    for name, entry in report.entries.items():
        if entry.expect.kind in ("up", "recovers", "down", "never"):
            assert (name in exposed) == (entry.expect.kind in ("up", "recovers")), (name, sorted(exposed))

    # No exception escaped anywhere in the sidecar; SIGTERM ended it at once, and everything
    # it ever started (seen as its children during the run) ended with it.
    assert not report.forbidden_log_lines(), report.forbidden_log_lines()[:5]
    # (The shutdown budget is 1.8 s; on a crowded host the process's own exit took up to 4.4 s.)
    assert report.exit_code == 0 and report.exit_seconds < 8, (report.exit_code, report.exit_seconds)
    assert report.children_seen >= 10 and not report.leftovers, report.leftovers


# -- the checks themselves can fail ----------------------------------------------------------------


def _scrape(
    states: dict[str, str], lost: dict[str, int] | None = None, connects: int = 1, active: int | None = None
) -> Scrape:
    """A scrape with the series the checks read; `lost`: exited disconnects per server."""
    lines = []
    for name, current in states.items():
        for state in ("connecting", "active", "reconnecting", "failed", "dropped", "stopped"):
            lines.append(f'mcp_server_state{{server="{name}",state="{state}"}} {int(state == current)}')
        up = int(current == "active")
        lines.append(f'mcp_server_up{{server="{name}",transport="stdio",criticality="optional"}} {up}')
        lines.append(
            f'mcp_server_disconnects_total{{server="{name}",reason="exited"}} {(lost or {}).get(name, 0)}'
        )
        lines.append(f'mcp_server_connect_duration_seconds_count{{server="{name}"}} {connects}')
    counted = sum(s == "active" for s in states.values())
    down = sum(s in ("reconnecting", "failed") for s in states.values())
    lines += [
        f"mcp_servers_active {counted if active is None else active}",
        f"mcp_servers_failed {down}",
        f"mcp_servers_configured {len(states)}",
    ]
    return Scrape("\n".join(lines) + "\n")


def test_the_invariant_checks_fail_on_broken_samples() -> None:
    names = ["a", "b"]
    good = {
        "status": "degraded",
        "active": ["a"],
        "failed": ["b"],
        "total": 2,
        "active_count": 1,
        "servers": [{"name": "a", "state": "active"}, {"name": "b", "state": "reconnecting"}],
    }
    assert health_violations(good, names) == []
    assert health_violations({**good, "active_count": 2}, names)
    assert health_violations({**good, "failed": []}, names)
    assert health_violations({**good, "total": 3}, names)
    assert health_violations({**good, "servers": good["servers"][:1]}, names)
    assert health_violations({**good, "servers": [good["servers"][0], {"name": "b", "state": "odd"}]}, names)

    assert metrics_violations(_scrape({"a": "active", "b": "failed"}), names) == []
    assert metrics_violations(_scrape({"a": "active", "b": "failed"}, active=2), names)
    assert metrics_violations(_scrape({"a": "active"}), names)  # b is missing
    two_states = _scrape({"a": "active", "b": "failed"})
    two_states.samples[("mcp_server_state", (("server", "b"), ("state", "stopped")))] = 1.0
    assert metrics_violations(two_states, names)
    up_but_failed = _scrape({"a": "active", "b": "failed"})
    up_but_failed.samples[
        ("mcp_server_up", (("criticality", "optional"), ("server", "b"), ("transport", "stdio")))
    ] = 1
    assert metrics_violations(up_but_failed, names)

    assert counter_regressions(_scrape({"a": "active"}, {"a": 2}), _scrape({"a": "active"}, {"a": 1}))
    assert not counter_regressions(_scrape({"a": "active"}, {"a": 1}), _scrape({"a": "active"}, {"a": 2}))
    assert healthy_violations(_scrape({"a": "active"}, {"a": 1}), "a")
    assert healthy_violations(_scrape({"a": "reconnecting"}), "a")
    assert not healthy_violations(_scrape({"a": "active"}), "a")


def test_the_expectations_fail_when_a_fault_had_another_effect() -> None:
    before = _scrape({"a": "active"})
    recovered = _scrape({"a": "active"}, {"a": 1}, connects=2)
    assert unmet(Expect("recovers", "exited"), "a", before, recovered, {"active"}) is None
    assert unmet(Expect("recovers", "closed"), "a", before, recovered, {"active"})  # another reason
    assert unmet(Expect("recovers"), "a", before, _scrape({"a": "reconnecting"}, {"a": 1}), {"active"})
    assert unmet(Expect("up"), "a", before, recovered, {"active"})
    assert unmet(Expect("up"), "a", before, _scrape({"a": "active"}), {"active"}) is None
    assert unmet(Expect("down"), "a", before, _scrape({"a": "reconnecting"}, {"a": 1}), {"active"}) is None
    assert unmet(Expect("loops", times=2), "a", before, recovered, {"active"})
    assert unmet(Expect("never"), "a", before, _scrape({"a": "reconnecting"}), {"connecting"})  # no failures
