"""Reconnect delays: exponential backoff with a cap and jitter. Pure; randomness is passed in."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BackoffPolicy", "backoff_delay", "gives_up"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait before reconnect attempt N, and when to stop trying."""

    initial: float = 1.0
    maximum: float = 60.0
    multiplier: float = 2.0
    jitter: float = 1.0  # share of the delay that is random: 1.0 is "full jitter", 0 is none
    max_attempts: int = 0  # 0 = forever


def backoff_delay(policy: BackoffPolicy, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect `attempt` (1-based).

    The ceiling grows as initial * multiplier^(attempt-1), capped at the maximum;
    the delay is drawn from [ceiling * (1 - jitter), ceiling] so that servers that
    failed together do not all retry in the same instant (AWS "full jitter" at 1.0).
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    try:
        growth = policy.multiplier ** (attempt - 1)
    except OverflowError:  # a server retried forever must not crash its supervisor
        growth = math.inf
    ceiling = min(policy.maximum, policy.initial * growth)
    return ceiling * (1.0 - policy.jitter * rand())


def gives_up(policy: BackoffPolicy, attempts_made: int) -> bool:
    """True when `attempts_made` reconnect attempts have failed and the policy allows no more."""
    return policy.max_attempts > 0 and attempts_made >= policy.max_attempts
