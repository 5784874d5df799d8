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
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from conformance_suite import CONFORMANCE_JS, Check, SuiteRun, lost, read_checks, run_suite
from externals import require
from support import LOCALHOST, REPO, free_port, wait_for

from .harness import SidecarProcess, health, write_config

UPSTREAM = REPO / "tests" / "servers" / "conformance_upstream.py"
ACTIVE_CHECKS = 40  # the active server suite of conformance 0.1.16: 30 scenarios, 40 checks
GATEWAY_BUILT = importlib.util.find_spec("sidecar.gateway") is not None


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


@pytest.fixture(scope="module")
def direct(suite_node: str, tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """The whole active suite against the upstream, no gateway: the reference for the rest."""
    tmp = tmp_path_factory.mktemp("direct")
    with upstream(tmp / "upstream.log") as (_, port):
        return run_suite(suite_node, f"http://{LOCALHOST}:{port}/mcp", tmp / "results")


def test_every_active_check_passes_directly(direct: SuiteRun) -> None:
    assert direct.count("FAILURE") == 0 and direct.count("WARNING") == 0, direct.summary()
    assert direct.count("SUCCESS") >= ACTIVE_CHECKS, f"{direct.summary()}\n{direct.output[-3000:]}"
    assert direct.returncode == 0, direct.output[-3000:]
    assert len({check.scenario for check in direct.checks}) >= 30


def _gateway_lists(url: str) -> bool:
    """True once the gateway's tools/list offers the upstream's tools, unprefixed."""
    from mcp import Client

    async def names() -> set[str]:
        with anyio.fail_after(5):
            async with Client(url, mode="legacy") as client:
                return {tool.name for tool in (await client.list_tools()).tools}

    try:
        return "test_simple_text" in anyio.run(names)
    except Exception:
        return False


def _upstream_entry(transport: str, protocol: str, url: str | None) -> str:
    """One `servers:` entry (JSON strings are YAML flow scalars) exposing names unchanged."""
    if transport == "stdio":
        argv = [str(UPSTREAM), "--transport", "stdio"]
        where = f"command: {json.dumps(sys.executable)}, args: {json.dumps(argv)}"
    else:
        where = f"url: {json.dumps(url)}"
    common = f"protocol: {json.dumps(protocol)}, gateway: {{prefix: ''}}"
    return f"  - {{name: conformance, transport: {transport}, {where}, {common}}}\n"


@pytest.mark.skipif(not GATEWAY_BUILT, reason="the gateway (sidecar.gateway) is not on this branch yet")
@pytest.mark.parametrize(
    ("transport", "protocol"),
    [("streamable-http", "legacy"), ("streamable-http", "2026-07-28"), ("stdio", "auto")],
)
def test_what_passes_directly_passes_through_the_gateway(
    transport: str,
    protocol: str,
    direct: SuiteRun,
    suite_node: str,
    tmp_path: Path,
    sidecars: Callable[..., SidecarProcess],
) -> None:
    assert direct.count("SUCCESS") >= ACTIVE_CHECKS, direct.summary()
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
        wait_for(
            lambda: (h := health(ops)) is not None and h["active"] == ["conformance"],
            30,
            "the upstream to be active",
        )
        wait_for(lambda: _gateway_lists(gateway_url), 15, "the gateway to list the upstream's tools")
        through = run_suite(suite_node, gateway_url, tmp_path / "results")
        missing = lost(direct.checks, through.checks)
        assert not missing, f"pass directly, not through the gateway: {missing}\n{through.summary()}"
        assert through.count("FAILURE") == 0, through.summary()
        assert sidecar.returncode is None, sidecar.logs()[-3000:]


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
