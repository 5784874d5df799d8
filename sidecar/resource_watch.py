"""The gateway's resource subscriptions on 2026-07-28 servers: one listen stream per watched URI.

An initialize-era client subscribes with `resources/subscribe`; a 2026-07-28 server has no
such method (-32601): there a subscription is a `subscriptions/listen` request naming the
URIs, whose open response is the stream of `notifications/resources/updated`. So for each
(server, URI) some gateway client subscribed to, the gateway holds a listen stream of its
own on the server's live session, beside the core's stream for list changes (kept apart
so that the core's stream, whose end is a death signal, never re-opens for a subscription).

The updates themselves reach subscribers the way an initialize-era server's do: the SDK
client tees every notification to the session's message handler, where `relay.Relay`
sends it, its URI rewritten, to the clients that subscribed. Here the stream is only
held, drained, and re-opened after the server comes back (nothing is replayed: the
subscribers are then told the resource may have changed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .errors import describe_error

__all__ = ["REOPEN_DELAY", "ResourceWatches"]

log = logging.getLogger("sidecar.gateway")

REOPEN_DELAY = 1.0  # a stream that keeps ending is re-opened at most once a second
Key = tuple[str, str]  # (server, the server's own URI)


class ResourceWatches:
    """The listen streams held for subscribed URIs, one task each in the gateway's task group."""

    def __init__(
        self,
        open_listen: Callable[[str, str], AbstractAsyncContextManager[Any]],
        ready: Callable[[str], bool],
        resumed: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._open = open_listen  # (server, uri) -> the SDK's subscription, as a context manager
        self._ready = ready  # whether a server is active on a 2026-07-28 session now
        self._resumed = resumed  # tell the subscribers: a re-opened stream replays nothing
        self._scopes: dict[Key, anyio.CancelScope] = {}
        self._changed = anyio.Event()

    async def start(self, task_group: TaskGroup, server: str, uri: str) -> None:
        """Open the stream for `uri` of `server` and keep it open until `stop`; returns once the
        server acknowledged it, or raises what refused it (then nothing is kept)."""
        await task_group.start(self._keep, (server, uri))

    def stop(self, server: str, uri: str) -> bool:
        """End the stream for `uri` of `server`; False if there was none."""
        scope = self._scopes.pop((server, uri), None)
        if scope is None:
            return False
        scope.cancel()
        return True

    def notice_change(self) -> None:
        """A server's state may have changed: streams waiting for their server try again."""
        self._changed.set()
        self._changed = anyio.Event()

    async def _keep(self, key: Key, *, task_status: TaskStatus[None]) -> None:
        with anyio.CancelScope() as scope:
            self._scopes[key] = scope
            try:
                await self._hold(key, task_status)
            finally:
                if self._scopes.get(key) is scope:
                    del self._scopes[key]

    async def _hold(self, key: Key, task_status: TaskStatus[None]) -> None:
        server, uri = key
        started = False
        while True:
            try:
                async with self._open(server, uri) as subscription:
                    if started:
                        await self._resumed(server, uri)
                    else:
                        task_status.started()
                        started = True
                    async for _ in subscription:
                        pass  # drained: the updates went to the subscribers through the relay
            except Exception as exc:
                if not started:
                    raise  # the subscriber's resources/subscribe fails with it
                # Its kind only: an exception's text may quote what redaction never saw.
                log.debug(
                    "gateway: the listen stream for %r of %r ended: %s", uri, server, describe_error(exc)[0]
                )
            await anyio.sleep(REOPEN_DELAY)
            while not self._ready(server):
                await self._changed.wait()
