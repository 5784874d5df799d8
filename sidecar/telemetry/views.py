"""The one loop that hands each lifecycle event to every view: metrics, trace, log line.

One subscriber rather than three, so that a log line can carry the ids of the span
that records the same event, and the views see events in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

from ..events import LifecycleEvent, Subscription
from .logs import LogWriter, SpanIds
from .metrics import SidecarMetrics

__all__ = ["feed_views"]


async def feed_views(
    subscription: Subscription,
    *,
    metrics: SidecarMetrics,
    log: LogWriter,
    trace: Callable[[LifecycleEvent], SpanIds | None] | None = None,
) -> None:
    """Until the subscription ends: count each event, record its span, write its line."""
    async for event in subscription:
        metrics.observe(event)
        span = trace(event) if trace is not None else None
        log.write(event, span)
