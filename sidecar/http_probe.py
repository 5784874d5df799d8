"""Health probes for streamable-HTTP servers: one POST, without the SDK's request machinery.

A probe through the SDK's client costs ~3.7 ms of CPU on the machines we measured (a task
per request, its own memory streams, httpx2, and a new TCP connection for every answer
streamed as SSE, since the SDK stops reading before the stream's end). At 1,000 servers
probed every 5 s that is most of a core, so probes go out here instead: one aiohttp
session for every server, connections kept per host, the session's own id, protocol
version and configured headers, and a request id of our own namespace so that it never
meets one of the SDK's on the same session. The decisions (what to send, what an answer
means) are pure functions; `HttpProber` only does the I/O.
"""

from __future__ import annotations

import functools
import itertools
import json
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ProbeFailed",
    "ProbeRequest",
    "ProbeRedirected",
    "ProbeUnreachable",
    "SessionGone",
    "HttpProber",
    "judge_status",
    "media_type",
    "probe_request",
    "read_answer",
]

KEEPALIVE = 4.0  # below the 5 s idle timeout of uvicorn and Node: we close first, no race
_MAX_ANSWER = 1 << 20  # a probe's answer is a few hundred bytes; a server that sends more is odd
_ids = itertools.count(1)


class ProbeFailed(Exception):
    """The server answered the probe with an error (HTTP or JSON-RPC)."""


class SessionGone(ProbeFailed):
    """HTTP 404 to a request that carried a session id: the server no longer knows the session,
    and the client must start a new one (streamable HTTP transport, "Session Management")."""


class ProbeUnreachable(Exception):
    """No answer could come: the connection was refused, reset or closed under the probe.
    Over HTTP that is what a dead server looks like, as a failed request of the SDK's is."""


class ProbeRedirected(Exception):
    """A redirect: the SDK follows those by its own rules, so its probe is used instead."""


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    body: bytes
    headers: dict[str, str]
    request_id: str


def probe_request(
    protocol_version: str,
    legacy: bool,
    session_id: str | None,
    configured: Mapping[str, str],
    discover_meta: Mapping[str, Any],
) -> ProbeRequest:
    """The probe that fits the era: `ping` on the session (initialize era), or a stateless
    `server/discover` stamped like the SDK's own (2026-07-28, where `ping` was removed)."""
    request_id = f"sidecar-probe-{next(_ids)}"
    headers = {
        **configured,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": protocol_version,
    }
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if legacy:
        message["method"] = "ping"
        if session_id:
            headers["Mcp-Session-Id"] = session_id
    else:
        message["method"] = "server/discover"
        message["params"] = {"_meta": dict(discover_meta)}
        headers["Mcp-Method"] = "server/discover"
    return ProbeRequest(json.dumps(message, separators=(",", ":")).encode(), headers, request_id)


def media_type(content_type: str) -> str:
    """`text/event-stream; charset=utf-8` -> `text/event-stream`."""
    return content_type.partition(";")[0].strip().lower()


def judge_status(status: int, carried_session: bool) -> Literal["read"]:
    """What an HTTP status means for a probe: read the body, or raise why not."""
    if 200 <= status < 300:
        return "read"
    if 300 <= status < 400:
        raise ProbeRedirected(f"HTTP {status}")
    if status == 404 and carried_session:
        raise SessionGone("the server no longer knows the session (HTTP 404)")
    raise ProbeFailed(f"HTTP {status}")


def read_answer(content_type: str, body: bytes, request_id: str) -> bool:
    """True once `body` holds the answer to `request_id`; raises if that answer is an error.

    A JSON body is the answer whole. An event stream may carry other messages before it
    (notifications), and may stay open after it: the caller feeds what has arrived so far
    and stops reading as soon as this returns True.
    """
    if content_type == "application/json":
        return _answered(json.loads(body), request_id, whole=True)
    # Complete events only (the last piece may be partial); lines end in CRLF, LF or CR.
    for event in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n")[:-1]:
        data = b"\n".join(
            line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
        )
        if data and _answered(json.loads(data), request_id, whole=False):
            return True
    return False


def _answered(message: Any, request_id: str, whole: bool) -> bool:
    if not isinstance(message, dict) or message.get("id") != request_id:
        if whole:
            raise ProbeFailed("the answer is not a JSON-RPC response to the probe")
        return False
    error = message.get("error")
    if isinstance(error, dict):
        raise ProbeFailed(f"JSON-RPC error {error.get('code')}: {error.get('message')}")
    if "result" not in message:
        raise ProbeFailed("the answer is not a JSON-RPC response to the probe")
    return True


@functools.lru_cache(maxsize=4096)
def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY),
    as the SDK's httpx2 clients use it, so that a probe takes the session's route."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if parts.hostname and urllib.request.proxy_bypass_environment(parts.hostname, proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


class HttpProber:
    """One aiohttp session for every streamable-HTTP server's probes, opened at first use.

    The caller bounds each probe with its own deadline. Proxy settings come from the
    environment, as for the SDK's httpx2 clients, and TLS uses the same shared context.
    """

    def __init__(self, tls: Callable[[], ssl.SSLContext] | None = None) -> None:
        self._tls = tls  # called at first use: loading CA certificates is not free
        self._session: Any = None  # aiohttp.ClientSession, imported on first use

    async def probe(self, url: str, request: ProbeRequest) -> None:
        """Send one probe and read its answer; raises `ProbeFailed` (the server answered
        wrongly), `SessionGone`, `ProbeUnreachable` (no answer could come: refused, reset)
        or `ProbeRedirected`."""
        import aiohttp

        for retry in (True, False):
            try:
                await self._exchange(url, request)
                return
            except aiohttp.ServerDisconnectedError as exc:
                # A kept-alive connection the server closed as we sent: the probe is idempotent.
                if not retry:
                    raise ProbeUnreachable(f"ServerDisconnectedError: {exc}") from exc
            except aiohttp.ClientConnectorError as exc:
                raise ProbeUnreachable(f"cannot connect: {exc.os_error}") from exc
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                raise ProbeUnreachable(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, url: str, request: ProbeRequest) -> None:
        session = self._session or self._open()
        async with session.post(
            url, data=request.body, headers=request.headers, allow_redirects=False, proxy=proxy_for(url)
        ) as response:
            judge_status(response.status, "Mcp-Session-Id" in request.headers)
            content_type = media_type(response.headers.get("Content-Type", ""))
            if content_type not in ("application/json", "text/event-stream"):
                raise ProbeFailed(f"unexpected content type {content_type or 'none'!r}")
            streamed = content_type == "text/event-stream"
            body = b""
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > _MAX_ANSWER:
                    raise ProbeFailed("the answer to the probe is over 1 MiB")
                if streamed and read_answer(content_type, body, request.request_id):
                    return  # an event stream may stay open after the answer: stop reading
            if not streamed and read_answer(content_type, body, request.request_id):
                return
            raise ProbeFailed("the stream ended without an answer to the probe")

    def _open(self) -> Any:
        import aiohttp  # the ops server imports it anyway; kept off `check`'s import path

        connector = aiohttp.TCPConnector(
            limit=0, keepalive_timeout=KEEPALIVE, ssl=self._tls() if self._tls else True
        )
        # trust_env=False: aiohttp would then read ~/.netrc in a thread for every request.
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
