"""The MCP conformance suite's server scenarios: against our upstream, and through the gateway.

The suite (npm `@modelcontextprotocol/conformance`, pinned in the Makefile) drives a real
server over streamable HTTP and writes a verdict per check. Directly, our conformance
upstream (tests/servers/conformance_upstream.py) passes all 40 checks of the active suite,
as the suite's own reference server does. Through `mcp-sidecar run`'s gateway with
`prefix: ""`, every check that passes directly must pass too: the gateway may add nothing
a client can see but its own endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from conformance_suite import CONFORMANCE_JS, Check, SuiteRun, lost, read_checks, run_suite
from externals import require
from support import LOCALHOST, REPO, free_port, wait_for

from .harness import SidecarProcess, health, write_config

UPSTREAM = REPO / "tests" / "servers" / "conformance_upstream.py"
ACTIVE_CHECKS = 40  # the active server suite of conformance 0.1.16: 30 scenarios, 40 checks


@pytest.fixture(scope="module")
def suite_node() -> str:
    """node, with the conformance suite installed (module scope: conftest's `node` is per test)."""
    node = shutil.which("node")
    require(node is not None, "node")
    require(CONFORMANCE_JS.is_file(), f"{CONFORMANCE_JS} (run `make .cache/npm/.installed`)")
    return node or ""


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOCALHOST, port), timeout=0.2):
        return True
    return False


@contextlib.contextmanager
def upstream(log: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The conformance upstream over streamable HTTP on a free port; SIGKILLed with its group."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(UPSTREAM), "--port", str(port), *flags],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _port_open(port) or process.poll() is not None, 30, "the conformance upstream")
        assert process.poll() is None, log.read_text(errors="replace")
        yield process, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass(frozen=True)
class Reference:
    """The upstream as a client sees it directly: its verdicts and what it lists."""

    run: SuiteRun
    offer: dict[str, list[str]]


async def _offer(url: str) -> dict[str, list[str]]:
    """Names of the tools and prompts, URIs of the resources and templates, listed at `url`."""
    from mcp import Client

    with anyio.fail_after(10):
        async with Client(url, mode="legacy") as client:
            templates = (await client.list_resource_templates()).resource_templates
            return {
                "tools": sorted(t.name for t in (await client.list_tools()).tools),
                "prompts": sorted(p.name for p in (await client.list_prompts()).prompts),
                "resources": sorted(str(r.uri) for r in (await client.list_resources()).resources),
                "templates": sorted(t.uri_template for t in templates),
            }


def offer(url: str) -> dict[str, list[str]] | None:
    """What `url` lists, or None while it does not answer."""
    try:
        return anyio.run(_offer, url)
    except Exception:
        return None


@pytest.fixture(scope="module")
def direct(suite_node: str, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The whole active suite against the upstream, no gateway: the reference for the rest."""
    tmp = tmp_path_factory.mktemp("direct")
    with upstream(tmp / "upstream.log") as (_, port):
        url = f"http://{LOCALHOST}:{port}/mcp"
        listed = offer(url)
        assert listed is not None, "the upstream does not answer its lists"
        return Reference(run_suite(suite_node, url, tmp / "results"), listed)


def test_every_active_check_passes_directly(direct: Reference) -> None:
    run = direct.run
    assert run.count("FAILURE") == 0 and run.count("WARNING") == 0, run.summary()
    assert run.count("SUCCESS") >= ACTIVE_CHECKS, f"{run.summary()}\n{run.output[-3000:]}"
    assert run.returncode == 0, run.output[-3000:]
    assert len({check.scenario for check in run.checks}) >= 30
    counts = {kind: len(names) for kind, names in direct.offer.items()}
    assert counts == {"tools": 13, "prompts": 4, "resources": 3, "templates": 1}


def _upstream_entry(transport: str, protocol: str, url: str | None) -> str:
    """One `servers:` entry (JSON strings are YAML flow scalars) exposing names unchanged."""
    if transport == "stdio":
        argv = [str(UPSTREAM), "--transport", "stdio"]
        where = f"command: {json.dumps(sys.executable)}, args: {json.dumps(argv)}"
    else:
        where = f"url: {json.dumps(url)}"
    common = f"protocol: {json.dumps(protocol)}, gateway: {{prefix: ''}}"
    return f"  - {{name: conformance, transport: {transport}, {where}, {common}}}\n"


# Checks known not to pass through the gateway yet, per upstream, kept exact: a new loss fails
# the test, and so does a fix (then shrink the list). None is left: a 2026-07-28 upstream's
# resources/subscribe becomes a listen stream, and its log lines an opt-in per call.
KNOWN_GAPS: dict[tuple[str, str], set[tuple[str, str]]] = {
    ("streamable-http", "legacy"): set(),
    ("stdio", "auto"): set(),
}


@pytest.mark.parametrize(
    ("transport", "protocol"),
    # auto: this upstream speaks 2026-07-28, so both eras and both transports are covered.
    [("streamable-http", "legacy"), ("stdio", "auto")],
)
def test_what_passes_directly_passes_through_the_gateway(
    transport: str,
    protocol: str,
    direct: Reference,
    suite_node: str,
    tmp_path: Path,
    sidecars: Callable[..., SidecarProcess],
) -> None:
    assert direct.run.count("SUCCESS") >= ACTIVE_CHECKS, direct.run.summary()
    ops, gateway_port = free_port(), free_port()
    gateway_url = f"http://{LOCALHOST}:{gateway_port}/mcp"
    with contextlib.ExitStack() as stack:
        url = None
        if transport != "stdio":
            _, port = stack.enter_context(upstream(tmp_path / "upstream.log"))
            url = f"http://{LOCALHOST}:{port}/mcp"
        gateway = f"  gateway: {{listen: '{LOCALHOST}:{gateway_port}', path: /mcp}}\n"
        config = write_config(tmp_path, ops, _upstream_entry(transport, protocol, url), gateway)
        sidecar = sidecars(config)
        stack.callback(lambda: print(f"sidecar log:\n{sidecar.logs()[-3000:]}"))  # shown on failure
        wait_for(
            lambda: (h := health(ops)) is not None and h["active"] == ["conformance"],
            30,
            "the upstream to be active",
        )
        wait_for(
            lambda: (o := offer(gateway_url)) is not None and o["tools"] == direct.offer["tools"],
            15,
            "the gateway to list the upstream's tools",
        )
        listed = offer(gateway_url)
        through = run_suite(suite_node, gateway_url, tmp_path / "results")
        missing = set(lost(direct.run.checks, through.checks))
        known = KNOWN_GAPS[(transport, protocol)]
        assert missing == known, f"pass directly, not through the gateway: {missing}\n{through.summary()}"
        assert through.count("FAILURE") == len(known), through.summary()
        assert listed == direct.offer  # names unchanged with prefix "", nothing missing
        assert sidecar.returncode is None


# -- reading the suite's verdicts (no suite run) -----------------------------------------------------


def test_verdicts_come_from_each_scenarios_checks_json(tmp_path: Path) -> None:
    def write(folder: str, entries: object) -> None:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "checks.json").write_text(json.dumps(entries))

    write(
        "server-tools-call-image-2026-12-03T11-18-22-788Z", [{"id": "tools-call-image", "status": "SUCCESS"}]
    )
    write(
        "server-dns-rebinding-protection-2026-12-03T11-18-25-250Z",
        [
            {"id": "localhost-host-rebinding-rejected", "status": "FAILURE", "errorMessage": "got 200"},
            {"id": "localhost-host-valid-accepted", "status": "SUCCESS"},
            {"id": "incoming-request", "status": "INFO"},  # the suite's trace, not a verdict
        ],
    )
    write("server-ping-2026-12-03T11-18-22-500Z", {"not": "a list"})
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "checks.json").write_text("[]")

    checks = read_checks(tmp_path)
    assert {(c.scenario, c.id, c.status) for c in checks} == {
        ("tools-call-image", "tools-call-image", "SUCCESS"),
        ("dns-rebinding-protection", "localhost-host-rebinding-rejected", "FAILURE"),
        ("dns-rebinding-protection", "localhost-host-valid-accepted", "SUCCESS"),
        ("ping", "checks.json", "FAILURE"),
    }
    assert next(c for c in checks if c.status == "FAILURE" and c.scenario != "ping").message == "got 200"


def test_lost_names_the_checks_that_pass_only_in_the_reference() -> None:
    direct = (Check("a", "x", "SUCCESS"), Check("b", "y", "SUCCESS"), Check("c", "z", "FAILURE"))
    through = (Check("a", "x", "SUCCESS"), Check("b", "y", "FAILURE"), Check("c", "z", "SUCCESS"))
    assert lost(direct, through) == [("b", "y")]
    assert lost(direct, direct) == []
    assert lost(direct, ()) == [("a", "x"), ("b", "y")]
