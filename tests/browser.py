"""A small headless-Chromium driver over the DevTools protocol (CDP), for tests that need a real browser.

`async with chromium(binary, workdir) as browser:` starts Chromium in its own session with a
throwaway profile and HOME (nothing of the user's is read or written), finds the browser's
websocket in the `DevToolsActivePort` file Chromium writes into the profile, and talks CDP
over aiohttp's websocket client. On exit it asks the browser to quit, then SIGKILLs by pid
whatever it started that is still there. Every await has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from support import proc_stat

__all__ = ["CDPError", "Chromium", "Page", "chromium", "find_chromium"]

BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The first Chromium on PATH (Debian's package installs `chromium`)."""
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


class CDPError(RuntimeError):
    """The browser answered a command with an error, or went away."""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class Page:
    """One tab, attached through a flat CDP session; keeps every event it receives."""

    def __init__(self, browser: Chromium, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()

    async def _record(self, event: dict[str, Any]) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    async def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        return await self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    async def wait_event(
        self,
        method: str,
        *,
        after: int = 0,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] = lambda params: True,
    ) -> dict[str, Any]:
        """The first `method` event at index >= `after` whose params satisfy `where`, within `timeout` s."""

        def found() -> dict[str, Any] | None:
            return next(
                (e for e in self.events[after:] if e.get("method") == method and where(e.get("params", {}))),
                None,
            )

        try:
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: found() is not None)
        except TimeoutError:
            raise AssertionError(f"no matching {method} event within {timeout:g}s") from None
        event = found()
        assert event is not None
        return event

    async def goto(self, url: str, timeout: float = 15.0) -> None:
        """Navigate and wait for the load event."""
        mark = len(self.events)
        reply = await self.send("Page.navigate", {"url": url}, timeout=timeout)
        if reply.get("errorText"):
            raise CDPError(f"navigating to {url}: {reply['errorText']}")
        await self.wait_event("Page.loadEventFired", after=mark, timeout=timeout)

    async def evaluate(self, expression: str, timeout: float = 5.0) -> Any:
        """The JSON value of `expression`, evaluated by DevTools (works with page scripts disabled)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        reply = await self.send("Runtime.evaluate", params, timeout=timeout)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise CDPError(
                f"{expression!r} threw: {details.get('exception', {}).get('description', details)}"
            )
        return reply["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float, what: str) -> Any:
        """Poll `expression` until it is truthy and return it; fail naming `what` after `timeout` s."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression, timeout=max(0.1, deadline - time.monotonic()))
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what}: not true within {timeout:g}s (last value: {value!r})")

    def requested_urls(self) -> list[str]:
        """Every URL this page asked for (needs `Network.enable`, which `new_page` sends)."""
        return [
            e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"
        ]

    def problems(self) -> list[str]:
        """Uncaught exceptions and console/log errors (a CSP violation is one)."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(
                    " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"])
                )
        return found


class Chromium:
    """A running headless browser and its CDP connection; made by `chromium()`."""

    def __init__(
        self, process: asyncio.subprocess.Process, workdir: Path, http: aiohttp.ClientSession
    ) -> None:
        self.process = process
        self.workdir = workdir
        self._http = http
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def log(self) -> str:
        try:
            return (self.workdir / "chromium.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def _connect(self, timeout: float) -> None:
        """Wait for `DevToolsActivePort` (port, then browser path) and open the websocket."""
        port_file = self.workdir / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.returncode is not None:
                raise CDPError(f"chromium exited with {self.process.returncode}:\n{self.log}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) >= 2:  # written in one go, but read it whole before trusting it
                break
            if time.monotonic() > deadline:
                raise CDPError(f"no DevToolsActivePort within {timeout:g}s:\n{self.log}")
            await asyncio.sleep(0.02)
        url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
            self._ws = await self._http.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Route answers to their waiting `send` and events to their page, until the socket closes."""
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                if "id" in data:
                    future = self._pending.get(data["id"])
                    if future is not None and not future.done():
                        future.set_result(data)
                elif (page := self._pages.get(data.get("sessionId", ""))) is not None:
                    await page._record(data)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CDPError("the browser connection closed"))

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """One CDP command; its `result`, or `CDPError`/`TimeoutError`."""
        if self._ws is None or self._ws.closed:
            raise CDPError("not connected to the browser")
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        try:
            async with asyncio.timeout(timeout):
                await self._ws.send_str(json.dumps(message))
                reply = await future
        except TimeoutError:
            raise TimeoutError(f"{method}: no answer from the browser within {timeout:g}s") from None
        finally:
            self._pending.pop(message["id"], None)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def new_page(self, *, javascript: bool = True) -> Page:
        """A new tab on about:blank with Page, Network, Runtime and Log events on."""
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        attached = await self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, attached["sessionId"])
        self._pages[page.session_id] = page
        for domain in ("Page", "Network", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        if not javascript:
            await page.send("Emulation.setScriptExecutionDisabled", {"value": True})
        return page

    def leftovers(self) -> list[int]:
        """Live processes of ours: the browser's session (renderers, zygotes, GPU), and the
        crashpad handlers, which leave the session but name our private HOME on their command line."""
        session = self.process.pid
        marker = str(self.workdir).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            stat = proc_stat(int(entry))
            if stat is None or stat[0] == "Z":
                continue
            if stat[3] == session or marker in _cmdline(int(entry)):
                found.append(int(entry))
        return found

    async def close(self, timeout: float = 5.0) -> None:
        """Quit politely (Browser.close), then SIGKILL by pid anything of ours still alive."""
        with contextlib.suppress(Exception):
            await self.send("Browser.close", timeout=min(2.0, timeout))
        if self._ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(1.0):
                    await self._reader
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._http.close()
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self.process.wait()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # reaped in between
                os.kill(self.process.pid, signal.SIGKILL)
        while (left := self.leftovers()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(5.0):  # reap the browser itself; the rest belong to init by now
            await self.process.wait()


def _argv(binary: str, workdir: Path) -> list[str]:
    argv = [
        binary,
        "--headless",
        "--remote-debugging-port=0",
        f"--user-data-dir={workdir / 'profile'}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--mute-audio",
        "about:blank",
    ]
    if os.geteuid() == 0:  # Chromium refuses to start as root with its sandbox on
        argv.insert(1, "--no-sandbox")
    return argv


@asynccontextmanager
async def chromium(binary: str, workdir: Path, *, timeout: float = 30.0) -> AsyncIterator[Chromium]:
    """A headless Chromium for the duration of the block; nothing of it survives the block."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    (workdir / "profile").mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LANG": "C.UTF-8",
    }
    with (workdir / "chromium.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *_argv(binary, workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    browser = Chromium(process, workdir, aiohttp.ClientSession())
    try:
        await browser._connect(timeout)
        yield browser
    finally:
        await browser.close()
