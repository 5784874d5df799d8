"""What the supervisor does when a server's event stream opens badly or ends: pure decisions."""

from __future__ import annotations

import pytest

from sidecar.backoff import BackoffPolicy
from sidecar.streams import (
    LATE_POLICY,
    REOPEN_POLICY,
    STABLE_AFTER,
    StreamEnd,
    StreamStep,
    after_stream_end,
    get_stream_news,
    listen_failure,
)

POLICY = BackoffPolicy(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0, max_attempts=3)


@pytest.mark.parametrize("kind", ["graceful", "dropped"])
def test_an_end_is_followed_by_a_reopen_with_growing_delays(kind: str) -> None:
    steps = []
    reopens = 0
    for _ in range(3):
        step = after_stream_end(StreamEnd(kind, held_for=0.5), reopens, POLICY)  # type: ignore[arg-type]
        steps.append(step)
        reopens = step.reopens
    assert steps == [
        StreamStep("reopen", delay=0.1, reopens=1),
        StreamStep("reopen", delay=0.2, reopens=2),
        StreamStep("reopen", delay=0.4, reopens=3),
    ]


def test_a_stream_that_keeps_ending_is_given_up_to_the_probes_not_taken_as_a_loss() -> None:
    step = after_stream_end(StreamEnd("graceful", held_for=0.5), 3, POLICY)
    assert step == StreamStep("probes_only", reopens=3)
    assert after_stream_end(StreamEnd("dropped", held_for=0.5), 7, POLICY).action == "probes_only"


def test_the_delay_is_capped() -> None:
    policy = BackoffPolicy(initial=0.1, maximum=0.3, multiplier=10.0, jitter=0.0, max_attempts=5)
    assert after_stream_end(StreamEnd("graceful"), 3, policy) == StreamStep("reopen", delay=0.3, reopens=4)


def test_a_stream_that_stayed_open_long_enough_starts_the_count_over() -> None:
    long_lived = StreamEnd("graceful", held_for=STABLE_AFTER)
    assert after_stream_end(long_lived, 3, POLICY) == StreamStep("reopen", delay=0.1, reopens=1)
    # Just short of it, the count goes on (here: past the bound).
    short_lived = StreamEnd("graceful", held_for=STABLE_AFTER - 0.01)
    assert after_stream_end(short_lived, 3, POLICY).action == "probes_only"


def test_a_refused_stream_leaves_the_server_to_the_probes() -> None:
    assert after_stream_end(StreamEnd("refused", "HTTP 405"), 0) == StreamStep("probes_only")
    assert after_stream_end(StreamEnd("refused", "HTTP 405"), 2) == StreamStep("probes_only")


def test_a_late_first_open_is_tried_again_more_slowly_then_left_to_the_probes() -> None:
    steps = []
    reopens = 0
    for _ in range(LATE_POLICY.max_attempts + 1):
        step = after_stream_end(StreamEnd("late", "no acknowledgment"), reopens)
        steps.append((step.action, step.delay))
        reopens = step.reopens
    assert steps == [("reopen", 1.0), ("reopen", 2.0), ("reopen", 4.0), ("reopen", 8.0), ("reopen", 16.0),
                     ("probes_only", 0.0)]  # fmt: skip


def test_a_failed_reopen_is_a_loss() -> None:
    assert after_stream_end(StreamEnd("failed", "HTTP 404"), 0) == StreamStep("lost")
    assert after_stream_end(StreamEnd("failed", "HTTP 404"), 4) == StreamStep("lost")


def test_the_default_policy_is_bounded_and_quick() -> None:
    assert REOPEN_POLICY.max_attempts > 0  # bounded: a server that keeps closing is left to probes
    assert REOPEN_POLICY.jitter == 0.0
    first = after_stream_end(StreamEnd("dropped"), 0)
    assert first.action == "reopen" and first.delay <= 0.1


@pytest.mark.parametrize(
    ("status", "event_stream", "reopening", "news"),
    [
        (200, True, False, "opened"),
        (200, True, True, "opened"),
        (200, False, False, "refused"),  # a JSON answer to a GET: no stream on offer
        (200, False, True, "refused"),
        (405, False, False, "refused"),
        (405, False, True, "refused"),  # "no stream here", not "no session"
        (404, False, False, "refused"),  # many servers say 404 for "no GET": never a loss at connect
        (404, False, True, "failed"),  # on a re-open: the session is gone
        (500, False, False, "refused"),
        (503, False, True, "failed"),
        (307, False, False, None),  # a redirect: the request it leads to answers
        (308, False, True, None),
        (409, False, True, "failed"),
    ],
)
def test_get_stream_news(status: int, event_stream: bool, reopening: bool, news: str | None) -> None:
    assert get_stream_news(status, event_stream, reopening) == news


@pytest.mark.parametrize(
    ("connection_gone", "answered", "reopening", "kind"),
    [
        (True, False, False, "failed"),  # could not reach the server at all
        (True, False, True, "failed"),
        (False, True, False, "refused"),  # method not found, a subscription limit: probes take over
        (False, True, True, "refused"),
        (False, False, False, "late"),  # no acknowledgment at the first open: slow, or broken
        (False, False, True, "failed"),  # ... but on a re-open, after a stream that worked
    ],
)
def test_listen_failure(connection_gone: bool, answered: bool, reopening: bool, kind: str) -> None:
    assert listen_failure(connection_gone, answered, reopening) == kind
