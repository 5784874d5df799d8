"""The status page at `/`: rendered by a real `mcp-sidecar run`, read in a real headless Chromium.

The sidecar supervises real stdio servers (tests/servers/behaving.py); the browser is Debian's
`chromium`, driven over the DevTools protocol by tests/browser.py.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest
import yaml
from browser import Page, chromium, find_chromium
from externals import require
from support import BEHAVING, free_port

from sidecar.web.status_page import format_age, render_status_page

from .harness import SidecarProcess

if TYPE_CHECKING:
    from conftest import LeakGuard

pytestmark = pytest.mark.anyio

HOSTILE = "<img src=x onerror=window.pwned=1>"  # what a server may print to stderr before dying
GREEN, RED = "rgb(21, 128, 61)", "rgb(185, 28, 28)"  # the page's colours for active and failed

# Every row as the page shows it: attributes and each field's text, read in the browser.
ROWS_JS = """[...document.querySelectorAll('#rows tr[data-server]')].map((tr) => ({
  server: tr.dataset.server, state: tr.dataset.state,
  colour: getComputedStyle(tr.querySelector('[data-field=state]')).backgroundColor,
  ...Object.fromEntries(
    [...tr.querySelectorAll('[data-field]')].map((el) => [el.dataset.field, el.textContent])),
}))"""


@pytest.fixture
def chromium_binary() -> str:
    binary = find_chromium()
    require(binary is not None, "chromium (apt-get install chromium)")
    assert binary is not None
    return binary


class Sidecar(SidecarProcess):
    """`mcp-sidecar run` on a free port with these servers, text log lines in `sidecar.log`."""

    def __init__(self, tmp_path: Path, servers: list[dict[str, Any]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "sidecar.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "sidecar": {"listen": f"127.0.0.1:{self.port}", "gateway": {"enabled": False}},
                    "defaults": {
                        "connect_timeout": "15s",
                        "health": {"interval": "500ms", "timeout": "1s"},
                        "reconnect": {"initial_backoff": "100ms", "max_backoff": "300ms"},
                    },
                    "servers": servers,
                }
            )
        )
        super().__init__(config, log_format="text")

    async def health(self, until: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Poll `/health/mcp` until `until(document)`; fail with the last document and the log."""
        document: dict[str, Any] = {}
        with anyio.move_on_after(timeout):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as http:
                while True:
                    assert self.process.poll() is None, f"sidecar exited:\n{self.log.read_text()[-3000:]}"
                    try:
                        async with http.get(f"{self.url}/health/mcp") as response:
                            document = await response.json()
                        if until(document):
                            return document
                    except (aiohttp.ClientError, TimeoutError):
                        pass
                    await anyio.sleep(0.05)
        raise AssertionError(f"health never matched; last: {document}\n{self.log.read_text()[-3000:]}")


@pytest.fixture
def sidecar(tmp_path: Path, leak_guard: LeakGuard) -> Iterator[Callable[[list[dict[str, Any]]], Sidecar]]:
    """`sidecar(servers)` starts one; each is stopped at teardown, before the leak guard looks."""
    started: list[Sidecar] = []

    def start(servers: list[dict[str, Any]]) -> Sidecar:
        started.append(Sidecar(tmp_path, servers))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def behaving(name: str, *flags: str) -> dict[str, Any]:
    return {"name": name, "transport": "stdio", "command": sys.executable, "args": [str(BEHAVING), *flags]}


def shell(name: str, script: str, *args: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "transport": "stdio",
        "command": "sh",
        "args": ["-c", script, name, *args],
        **fields,
    }


def by_state(**expected: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: {s["name"]: s["state"] for s in doc.get("servers", [])} == expected


def read_pid(path: Path) -> int:
    """The pid a server wrote at start (before its handshake, so it is there once it is active)."""
    return int(path.read_text())


async def rows(page: Page) -> dict[str, dict[str, str]]:
    return {row["server"]: row for row in await page.evaluate(ROWS_JS)}


async def test_rows_follow_a_killed_server_without_reload(
    sidecar: Callable[[list[dict[str, Any]]], Sidecar], chromium_binary: str, tmp_path: Path
) -> None:
    marker, gamma_pid = tmp_path / "gamma.allowed", tmp_path / "gamma.pid"
    marker.touch()
    # gamma starts only while the marker exists, so once it is killed every restart fails.
    gamma_script = 'test -e "$1" || { echo "marker gone" >&2; exit 3; }; exec "$2" "$3" --pidfile "$4"'
    give_up = {"reconnect": {"initial_backoff": "200ms", "max_backoff": "200ms", "max_attempts": 2,
                             "on_give_up": "keep"}}  # fmt: skip
    side = sidecar(
        [
            {**behaving("alpha", "--extra-tools", "3"), "criticality": "critical"},
            shell(
                "gamma", gamma_script, str(marker), sys.executable, str(BEHAVING), str(gamma_pid), **give_up
            ),
            shell("hostile", f"echo '{HOSTILE}' >&2; exit 1", **give_up),
        ]
    )
    # The browser starts while the sidecar connects its servers.
    async with chromium(chromium_binary, tmp_path / "chromium") as browser:
        document = await side.health(by_state(alpha="active", gamma="active", hostile="failed"))
        pid = read_pid(gamma_pid)
        page = await browser.new_page()
        await page.goto(f"{side.url}/")
        shown = await rows(page)
        assert list(shown) == ["alpha", "gamma", "hostile"]  # config order, one row each
        for server in document["servers"]:
            row = shown[server["name"]]
            assert row["state"] == server["state"]
            assert row["tools"] == str(len(server["tools"]))
            assert row["protocol_version"] == (server["protocol_version"] or "\u2014")
            assert row["reconnect_attempts"] == str(server["reconnect_attempts"])
        assert shown["alpha"]["tools"] == "7" and shown["gamma"]["tools"] == "4"
        assert shown["alpha"]["protocol_version"] not in ("", "\u2014")
        assert shown["alpha"]["meta"] == "critical \u00b7 stdio"
        assert shown["alpha"]["colour"] == GREEN and shown["hostile"]["colour"] == RED
        # A server's stderr is shown as text: no element made of it, no script run from it.
        assert HOSTILE in shown["hostile"]["last_error"]
        assert await page.evaluate("document.querySelectorAll('#rows img').length") == 0
        assert await page.evaluate("window.pwned") is None
        assert await page.evaluate("document.documentElement.hasAttribute('data-live')")  # the script ran

        await page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
        marker.unlink()
        os.kill(pid, signal.SIGKILL)
        left = await page.wait_for(
            "(s => s !== 'active' && s)(document.querySelector('tr[data-server=gamma]').dataset.state)",
            timeout=10,
            what="gamma's row leaving active",
        )
        assert left in ("reconnecting", "failed")
        await page.wait_for(
            "document.querySelector('tr[data-server=gamma]').dataset.state === 'failed'",
            timeout=10,
            what="gamma's row turning failed",
        )
        shown = await rows(page)
        assert shown["gamma"]["colour"] == RED
        assert "exited" in shown["gamma"]["last_error"] and "marker gone" in shown["gamma"]["last_error"]
        assert shown["gamma"]["reconnect_attempts"] == "2"
        assert shown["alpha"]["state"] == "active"
        assert HOSTILE in shown["hostile"]["last_error"]  # re-rendered from JSON: still text
        assert await page.evaluate("document.querySelectorAll('#rows img').length") == 0
        assert await page.evaluate("document.getElementById('status').textContent") == "degraded"
        assert await page.evaluate("document.getElementById('counts').textContent") == "1 of 3 active"
        assert await page.evaluate("window.sameDocument") is True
        # Nothing but the page and its own health/mcp, and no error (a CSP block would show here).
        assert set(page.requested_urls()) == {f"{side.url}/", f"{side.url}/health/mcp"}
        assert page.problems() == []

        side.process.send_signal(signal.SIGTERM)  # the fixture reaps it
        await page.wait_for(
            "!document.getElementById('stale').hidden",
            timeout=5,
            what="the stale marker after the sidecar stopped",
        )
        assert "cannot read health/mcp" in await page.evaluate("document.getElementById('stale').textContent")
        assert list(await rows(page)) == ["alpha", "gamma", "hostile"]  # the last good data stays


async def test_page_is_complete_without_javascript(
    sidecar: Callable[[list[dict[str, Any]]], Sidecar], chromium_binary: str, tmp_path: Path
) -> None:
    side = sidecar(
        [
            behaving("ok"),
            {
                **behaving("broken", "--crash-at-start"),
                "reconnect": {"max_attempts": 1, "on_give_up": "keep"},
            },
        ]
    )
    async with chromium(chromium_binary, tmp_path / "chromium") as browser:
        page = await browser.new_page(javascript=False)
        await side.health(lambda document: True)  # ops answers at once, while the servers connect
        await page.goto(f"{side.url}/")
        assert not await page.evaluate("document.documentElement.hasAttribute('data-live')")  # no script ran
        assert list(await rows(page)) == ["ok", "broken"]  # every row from the first answer on, in any state

        # Without the script the page reloads itself (a <noscript> meta refresh, every 5 s): a
        # document requested once the servers have settled shows them settled.
        await side.health(by_state(ok="active", broken="failed"))
        settled = len(page.events)
        request = await page.wait_event(
            "Network.requestWillBeSent", after=settled, timeout=8, where=lambda p: p["type"] == "Document"
        )
        assert request["params"]["request"]["url"] == f"{side.url}/"
        await page.wait_event("Page.loadEventFired", after=settled, timeout=5)
        shown = await rows(page)
        assert list(shown) == ["ok", "broken"]
        assert shown["ok"]["state"] == "active" and shown["ok"]["colour"] == GREEN
        assert shown["broken"]["state"] == "failed" and shown["broken"]["colour"] == RED
        assert "ModuleNotFoundError" in shown["broken"]["last_error"]
        assert shown["ok"]["tools"] == "4" and shown["broken"]["reconnect_attempts"] == "1"
        assert await page.evaluate("document.getElementById('status').textContent") == "degraded"
        assert not await page.evaluate("document.documentElement.hasAttribute('data-live')")
        assert page.problems() == []


# -- the renderer alone ---------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every start tag an HTML parser finds, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _server(**fields: Any) -> dict[str, Any]:
    return {
        "name": "s", "state": "active", "transport": "stdio", "criticality": "optional", "since": 1000.0,
        "last_error": None, "last_error_type": None, "consecutive_failures": 0, "reconnect_attempts": 0,
        "tools": [], "protocol_version": None, "server_info": None, **fields,
    }  # fmt: skip


def test_render_escapes_every_server_provided_string() -> None:
    evil = "<script>alert(1)</script>\"'"
    server = _server(
        name=evil,
        state='failed"><svg onload=alert(1)>',
        last_error="</td><img src=x onerror=alert(1)>",
        last_error_type='"><b>',
        tools=["<i>t</i>"],
        protocol_version="<u>v</u>",
        server_info={"name": "<em>n</em>", "version": "<s>1</s>"},
    )
    page = render_status_page(
        {
            "status": "<h2>x</h2>",
            "active": [],
            "failed": [evil],
            "total": 1,
            "active_count": 0,
            "servers": [server],
        },
        now=1100.0,
    )
    parser = _Tags()
    parser.feed(page)
    assert parser.tags.count("script") == 1  # ours only
    assert not {"img", "svg", "b", "i", "u", "em", "s", "h2"} & set(parser.tags)
    assert 'data-server="&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;"' in page
    assert "&lt;/td&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'class="s-unknown"' in page  # an unknown state gets no class of its own making


def test_render_rows_summary_and_ages() -> None:
    servers = [
        _server(name="a", tools=["echo", "add"], protocol_version="2025-11-25", since=1000.0,
                server_info={"name": "demo", "version": "1.2"}),
        _server(name="b", state="reconnecting", last_error="exited with code 1", reconnect_attempts=3,
                since=1090.0),
    ]  # fmt: skip
    document = {"status": "degraded", "active": ["a"], "failed": ["b"], "total": 2, "active_count": 1}
    page = render_status_page({**document, "servers": servers}, now=1100.0)
    assert '<tr data-server="a" data-state="active" class="s-active">' in page
    assert '<tr data-server="b" data-state="reconnecting" class="s-reconnecting">' in page
    assert '<span data-field="tools" title="echo, add">2</span>' in page
    assert '<span data-field="protocol_version" title="demo 1.2">2025-11-25</span>' in page
    assert '<span data-field="since" title="1970-01-01T00:16:40Z">1m 40s</span>' in page
    assert '<span data-field="since" title="1970-01-01T00:18:10Z">10s</span>' in page
    assert '<span id="counts">1 of 2 active</span><span id="down">; down: b</span>' in page
    assert "<title>mcp-sidecar: degraded (1/2)</title>" in page
    assert 'http-equiv="refresh"' in page.split("<noscript>", 1)[1].split("</noscript>", 1)[0]
    assert "no servers configured" in render_status_page({**document, "servers": []}, now=1100.0)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(-5, "0s"), (0, "0s"), (59.9, "59s"), (60, "1m 0s"), (3599, "59m 59s"), (3600, "1h 0m"),
     (86399, "23h 59m"), (86400 + 7200, "1d 2h")],
)  # fmt: skip
def test_format_age(seconds: float, shown: str) -> None:
    assert format_age(seconds) == shown


def test_page_has_no_external_references() -> None:
    page = render_status_page({"status": "healthy", "servers": [_server()]}, now=time.time())
    for needle in ("http://", "https://", "src=", "@import", "url("):
        assert needle not in page, needle
