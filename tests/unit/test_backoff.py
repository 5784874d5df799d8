"""Reconnect delays: exponential growth, cap, jitter bounds, and when the policy gives up."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from sidecar.backoff import BackoffPolicy, backoff_delay, gives_up


def no_jitter_draw() -> float:
    return 0.0  # the delay equals the ceiling whatever the jitter


def high_draw() -> float:
    return 0.999  # random.random never returns 1.0


DEFAULT = BackoffPolicy()


def ceiling(policy: BackoffPolicy, attempt: int) -> float:
    """The ceiling, computed independently of the module."""
    return min(policy.maximum, policy.initial * policy.multiplier ** (attempt - 1))


def test_default_policy() -> None:
    expected = BackoffPolicy(initial=1.0, maximum=60.0, multiplier=2.0, jitter=1.0, max_attempts=0)
    assert expected == DEFAULT


def test_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.initial = 5.0  # type: ignore[misc]


def test_exponential_growth_then_cap() -> None:
    delays = [backoff_delay(DEFAULT, n, rand=no_jitter_draw) for n in range(1, 11)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (BackoffPolicy(initial=0.5, maximum=10.0, multiplier=3.0), [0.5, 1.5, 4.5, 10.0, 10.0]),
        (BackoffPolicy(initial=2.0, maximum=2.0), [2.0, 2.0, 2.0, 2.0, 2.0]),  # cap == initial
        (BackoffPolicy(initial=1.0, maximum=100.0, multiplier=1.0), [1.0, 1.0, 1.0, 1.0, 1.0]),  # constant
        (BackoffPolicy(initial=0.1, maximum=1.0, multiplier=10.0), [0.1, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_ceilings_for_other_policies(policy: BackoffPolicy, expected: list[float]) -> None:
    delays = [backoff_delay(policy, n, rand=no_jitter_draw) for n in range(1, 6)]
    assert delays == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 7, 20])
def test_full_jitter_bounds(attempt: int) -> None:
    top = ceiling(DEFAULT, attempt)
    assert backoff_delay(DEFAULT, attempt, rand=no_jitter_draw) == top
    low = backoff_delay(DEFAULT, attempt, rand=high_draw)
    assert low == pytest.approx(top * 0.001)
    assert 0.0 < low < top


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999])
@pytest.mark.parametrize("attempt", [1, 4, 10])
def test_zero_jitter_gives_exact_ceilings(attempt: int, draw: float) -> None:
    policy = BackoffPolicy(jitter=0.0)
    assert backoff_delay(policy, attempt, rand=lambda: draw) == ceiling(policy, attempt)


@pytest.mark.parametrize(
    ("draw", "share"),
    [(0.0, 1.0), (0.5, 0.75), (0.999, 1.0 - 0.5 * 0.999)],
)
def test_partial_jitter(draw: float, share: float) -> None:
    policy = BackoffPolicy(jitter=0.5)
    for attempt in (1, 3, 6, 9):
        top = ceiling(policy, attempt)
        delay = backoff_delay(policy, attempt, rand=lambda: draw)
        assert delay == pytest.approx(top * share)
        assert top * 0.5 <= delay <= top


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_attempt_is_one_based(attempt: int) -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(DEFAULT, attempt, rand=no_jitter_draw)


@pytest.mark.parametrize("attempt", [1_000, 1_001, 10_000, 10**9])
def test_huge_attempt_does_not_overflow(attempt: int) -> None:
    delay = backoff_delay(DEFAULT, attempt, rand=no_jitter_draw)
    assert delay == DEFAULT.maximum
    assert math.isfinite(backoff_delay(DEFAULT, attempt, rand=high_draw))


@pytest.mark.parametrize("multiplier", [3.0, 10.0])
def test_huge_attempt_with_larger_multiplier_does_not_overflow(multiplier: float) -> None:
    policy = BackoffPolicy(multiplier=multiplier)
    assert backoff_delay(policy, 10_000, rand=no_jitter_draw) == policy.maximum


def test_default_rand_is_random_within_bounds() -> None:
    for attempt in range(1, 12):
        top = ceiling(DEFAULT, attempt)
        assert 0.0 < backoff_delay(DEFAULT, attempt) <= top


@pytest.mark.parametrize(
    ("max_attempts", "attempts_made", "expected"),
    [
        (0, 0, False),
        (0, 1, False),
        (0, 1_000_000, False),  # 0 = retry forever
        (3, 0, False),
        (3, 1, False),
        (3, 2, False),
        (3, 3, True),
        (3, 4, True),
        (1, 1, True),
    ],
)
def test_gives_up(max_attempts: int, attempts_made: int, expected: bool) -> None:
    assert gives_up(BackoffPolicy(max_attempts=max_attempts), attempts_made) is expected


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize(
    "policy",
    [
        BackoffPolicy(),
        BackoffPolicy(initial=0.25, maximum=30.0, multiplier=1.5),
        BackoffPolicy(initial=5.0, maximum=5.0, multiplier=4.0),
    ],
)
def test_property_every_delay_within_jitter_band(policy: BackoffPolicy, jitter: float) -> None:
    policy = dataclasses.replace(policy, jitter=jitter)
    rng = random.Random(f"{policy}-{jitter}")
    for _ in range(2_000):
        attempt = rng.randint(1, 40)
        top = ceiling(policy, attempt)
        delay = backoff_delay(policy, attempt, rand=rng.random)
        assert top * (1.0 - jitter) - 1e-12 <= delay <= top, (attempt, delay, top)
