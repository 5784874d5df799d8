"""What to do when a server's event stream opens badly or ends. Pure: no I/O, no clock.

The event stream carries a server's change notifications, and its end is the fastest
sign that an HTTP server died (the TCP connection closes at once): the standalone GET
stream of an initialize-era streamable-HTTP session, or a `subscriptions/listen` stream
on a 2026-07-28 session. An end is not a death by itself: the supervisor sends one
probe at once (a failed request is a loss), then re-opens the stream with a bounded
backoff and re-lists what the server offers, since nothing is replayed. A server that
refuses the stream, or keeps ending it, is watched by health probes only. A first open
that is not acknowledged in time is tried again, more slowly, a few times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .backoff import BackoffPolicy, backoff_delay, gives_up

__all__ = [
    "LATE_POLICY",
    "REOPEN_POLICY",
    "STABLE_AFTER",
    "StreamEnd",
    "StreamStep",
    "after_stream_end",
    "get_stream_news",
    "listen_failure",
]

EndKind = Literal["graceful", "dropped", "refused", "failed", "late"]

# Re-opens in a row allowed before giving the stream up (probes still run): 0.1, 0.2, 0.4, 0.8, 1.6 s.
REOPEN_POLICY = BackoffPolicy(initial=0.1, maximum=5.0, multiplier=2.0, jitter=0.0, max_attempts=5)
STABLE_AFTER = 30.0  # a stream that stayed open this long ended on its own: the count starts over
# A first listen not acknowledged in time (a slow server, a busy host): tried again after
# 1, 2, 4, 8, 16 s, then given up (probes still run). Given up at once, a server's changes
# went unheard for its whole session after one slow answer.
LATE_POLICY = BackoffPolicy(initial=1.0, maximum=30.0, multiplier=2.0, jitter=0.0, max_attempts=5)


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """How one stream (or an attempt to open it) ended.

    graceful  the server closed it properly (final chunk, or the listen result)
    dropped   the connection under it broke (reset, incomplete body, no result)
    refused   the server answered that it does not offer one (405, method not found ...)
    failed    a re-open did not succeed: the session or the connection is gone
    late      a first open got no acknowledgment in time
    """

    kind: EndKind
    error: str | None = None
    held_for: float = 0.0  # seconds it was open; 0 if it never opened


@dataclass(frozen=True, slots=True)
class StreamStep:
    """The supervisor's next move: re-open (after one probe, then `delay`), give the stream up,
    or take the server as lost."""

    action: Literal["reopen", "probes_only", "lost"]
    delay: float = 0.0
    reopens: int = 0  # quick re-opens in a row, this one included


def after_stream_end(
    end: StreamEnd,
    reopens: int,
    policy: BackoffPolicy = REOPEN_POLICY,
    stable_after: float = STABLE_AFTER,
    late_policy: BackoffPolicy = LATE_POLICY,
) -> StreamStep:
    """Decide after `end`, given `reopens` re-opens in a row before it (after a `late` end, the
    first opens tried again so far)."""
    if end.kind == "refused":
        return StreamStep("probes_only")
    if end.kind == "failed":
        return StreamStep("lost")
    if end.kind == "late":
        policy = late_policy
    if end.held_for >= stable_after:
        reopens = 0
    if gives_up(policy, reopens):
        return StreamStep("probes_only", reopens=reopens)
    reopens += 1
    return StreamStep("reopen", delay=backoff_delay(policy, reopens, lambda: 0.0), reopens=reopens)


def get_stream_news(
    status: int, event_stream: bool, reopening: bool
) -> Literal["opened", "refused", "failed"] | None:
    """What the answer to a standalone GET means; None for a redirect (the answer to the request
    it leads to is the news; one the SDK does not follow leaves the stream to the probes).

    At the first open any non-stream answer is a refusal (many servers answer 404 rather
    than 405). On a re-open the session existed a moment ago: an error now (404: the
    session is gone; 5xx) means the server will not take us back, except a 405, which
    says "no stream here" and not "no session".
    """
    if 300 <= status < 400:
        return None
    if 200 <= status < 300 and event_stream:
        return "opened"
    if not reopening or status == 405 or status < 400:
        return "refused"
    return "failed"


def listen_failure(
    connection_gone: bool, answered: bool, reopening: bool
) -> Literal["refused", "failed", "late"]:
    """What a `subscriptions/listen` that did not open means.

    `answered`: the server replied with a JSON-RPC error (method not found, a limit):
    it is alive and will not, so probes take over. `connection_gone`: the request could
    not reach it. Anything else (no acknowledgment in time, a stream that ended before
    it) fails a re-open, but is only `late` at a first open: tried again a few times, then
    left to the probes, so that a server whose listen is broken is not reconnected forever.
    """
    if connection_gone:
        return "failed"
    if answered:
        return "refused"
    return "late" if not reopening else "failed"
