"""The health verdict: N consecutive failed probes make a server unhealthy; one success resets."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.health import HealthVerdict, ProbeResult, judge

OK = ProbeResult(duration=0.01)
TIMEOUT = ProbeResult(duration=5.0, error_type="probe_timeout", error="timed out")
ERROR = ProbeResult(duration=0.02, error_type="probe_error", error="boom")


def test_probe_result_ok() -> None:
    assert OK.ok
    assert not TIMEOUT.ok
    assert not ERROR.ok


@pytest.mark.parametrize(
    ("previous", "result", "threshold", "expected"),
    [
        (0, OK, 3, HealthVerdict(0, False)),
        (2, OK, 3, HealthVerdict(0, False)),  # one success resets the count
        (10, OK, 3, HealthVerdict(0, False)),  # even past the threshold
        (0, ERROR, 3, HealthVerdict(1, False)),
        (1, TIMEOUT, 3, HealthVerdict(2, False)),
        (2, ERROR, 3, HealthVerdict(3, True)),  # crossing the threshold
        (3, TIMEOUT, 3, HealthVerdict(4, True)),  # stays unhealthy past it
        (0, ERROR, 1, HealthVerdict(1, True)),  # threshold 1: the first failure counts
    ],
)
def test_judge(previous: int, result: ProbeResult, threshold: int, expected: HealthVerdict) -> None:
    assert judge(previous, result, threshold) == expected


@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_sequence_crosses_threshold_exactly_once_then_resets(threshold: int) -> None:
    failures = 0
    verdicts = []
    for _ in range(threshold + 2):
        verdict = judge(failures, ERROR, threshold)
        failures = verdict.consecutive_failures
        verdicts.append(verdict)
    assert [v.consecutive_failures for v in verdicts] == list(range(1, threshold + 3))
    assert [v.unhealthy for v in verdicts] == [n >= threshold for n in range(1, threshold + 3)]

    reset = judge(failures, OK, threshold)
    assert reset == HealthVerdict(consecutive_failures=0, unhealthy=False)
    assert judge(reset.consecutive_failures, ERROR, threshold).consecutive_failures == 1


def test_interleaved_success_prevents_unhealthy() -> None:
    failures = 0
    for result in [ERROR, ERROR, OK, ERROR, ERROR, OK, ERROR, ERROR]:
        verdict = judge(failures, result, threshold=3)
        assert not verdict.unhealthy
        failures = verdict.consecutive_failures
    assert failures == 2


def test_results_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        OK.error_type = "probe_error"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        judge(0, OK, 3).unhealthy = True  # type: ignore[misc]
