"""The health verdict: a server is unhealthy after N consecutive failed probes. Pure."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HealthVerdict", "ProbeResult", "judge"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found. `error_type` is None when the probe succeeded."""

    duration: float
    error_type: str | None = None  # "probe_timeout" or "probe_error"
    error: str | None = None
    session_gone: bool = False  # HTTP 404 to our session: no later probe can succeed on it

    @property
    def ok(self) -> bool:
        return self.error_type is None


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    """Consecutive failures so far, and whether they cross the threshold."""

    consecutive_failures: int
    unhealthy: bool


def judge(previous_failures: int, result: ProbeResult, threshold: int) -> HealthVerdict:
    """Fold one probe result into the running count; one success resets it. A session the
    server has forgotten is unhealthy at once: waiting for more failures only delays the new one."""
    if result.ok:
        return HealthVerdict(consecutive_failures=0, unhealthy=False)
    failures = previous_failures + 1
    return HealthVerdict(
        consecutive_failures=failures, unhealthy=result.session_gone or failures >= threshold
    )
