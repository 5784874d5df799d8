"""`mcp-sidecar run | check | status | --version`.

Exit codes: 0 clean shutdown or valid config; 1 startup failed (`strict`) or the
sidecar is unreachable; 2 bad config or bad usage, with nothing started.

`--version`, `check` and `status` are typed by hand and run in CI pipelines, so they
import only what they use: the mcp SDK, OpenTelemetry and aiohttp are imported inside
`run` (tests/unit/test_imports.py holds this).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._version import mcp_version, sidecar_version
from .web.status_page import format_age

if TYPE_CHECKING:
    from .config import SidecarConfig
    from .telemetry.tracing import LifecycleTracer

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_YOUNG_GENERATION = 10_000  # objects allocated between young collections (CPython's default: 700)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-sidecar", description="Supervises an agent's MCP servers.")
    parser.add_argument(
        "--version", action="version", version=f"mcp-sidecar {sidecar_version()} (mcp {mcp_version()})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="connect to the configured servers and keep them connected")
    run.add_argument("-c", "--config", required=True, help="YAML config, or an mcpServers JSON file")
    run.add_argument("--log-format", choices=("json", "text"), default="json", help="lifecycle log lines")

    check = commands.add_parser("check", help="validate a config file and exit")
    check.add_argument("-c", "--config", required=True)

    status = commands.add_parser("status", help="print the servers of a running sidecar")
    status.add_argument("--url", default="http://127.0.0.1:9464", help="the sidecar's ops address")
    status.add_argument("--json", action="store_true", help="print the raw /health/mcp document")
    return parser


def _load(path: str) -> SidecarConfig | None:
    from .config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _check(path: str) -> int:
    config = _load(path)
    if config is None:
        return EXIT_USAGE
    print(f"{path}: ok, {len(config.servers)} servers")
    return EXIT_OK


async def _serve(
    path: str, config: SidecarConfig, log_format: str, tracer: LifecycleTracer, meters: Any = None
) -> int:
    import anyio

    from .config import load_config
    from .errors import StartupError
    from .manager import MCPServerManager
    from .telemetry.logs import LogWriter, format_json, format_text
    from .telemetry.metrics import SidecarMetrics
    from .telemetry.views import feed_views
    from .web.ops import Admin, serve_ops

    manager = MCPServerManager(config)
    metrics = SidecarMetrics(manager.statuses)
    if meters is not None:  # OTLP metrics: the same numbers, pushed
        meters.attach(metrics)
    log = LogWriter(format_json if log_format == "json" else format_text)
    token_env = config.sidecar.admin_token_env

    reloading = anyio.Lock()  # reloads (HTTP, SIGHUP) one at a time: the file read last is applied last

    async def reload() -> dict[str, list[str]]:
        async with reloading:
            new = load_config(path)
            tracer.use_config(new)
            return await manager.apply(new)

    admin = Admin(
        token=os.environ.get(token_env) or None if token_env else None, token_env=token_env, reload=reload
    )
    from .app import build_gateway, serve_gateway

    # Built before the manager starts: servers connect with its hooks.
    gateway = build_gateway(manager, config, metrics)
    subscription = manager.subscribe(max_buffer=10_000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            functools.partial(feed_views, subscription, metrics=metrics, log=log, trace=tracer.observe)
        )
        try:
            # Ops first: /livez and /readyz answer (503, connecting) while servers connect.
            report = gateway.report if gateway is not None else None
            async with (
                serve_ops(manager, config.sidecar.listen, metrics, admin, report),
                serve_gateway(gateway, config),
                manager,
            ):
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                    async for signum in signals:
                        if signum != signal.SIGHUP:
                            break  # leaving the `async with` stops every server within its budget
                        tg.start_soon(_reload_on_hangup, reload, config.secrets())
        except StartupError as exc:
            print(f"mcp-sidecar: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:  # the ops or gateway port is taken, most often; no server was started
            where = getattr(exc, "listen", config.sidecar.listen)
            print(f"mcp-sidecar: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
            subscription.end()  # the manager never ran, so its bus will not end the views
            return EXIT_FAILED
        except BaseException:
            subscription.end()
            raise
        # Leaving the manager closed its bus: the views write the last events, then end.
    return EXIT_OK


async def _reload_on_hangup(
    reload: Callable[[], Awaitable[dict[str, list[str]]]], secrets: frozenset[str]
) -> None:
    """SIGHUP reloads the config, as Prometheus does; a bad file changes nothing."""
    from .config import ConfigError
    from .redact import redact

    try:
        changes = await reload()
        print(f"mcp-sidecar: reloaded: {json.dumps(changes)}", file=sys.stderr)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mcp-sidecar: reload refused: {problem}", file=sys.stderr)
    except Exception as exc:  # a failed reload must not take the running sidecar down
        print(
            f"mcp-sidecar: reload failed: {redact(f'{type(exc).__name__}: {exc}', secrets)}", file=sys.stderr
        )


def _run(path: str, log_format: str) -> int:
    config = _load(path)
    if config is None:
        return EXIT_USAGE
    # The service's own imports: the mcp SDK, OpenTelemetry and aiohttp come in here only.
    import anyio

    from .telemetry.logs import route_library_logs
    from .telemetry.otlp_metrics import configure_metric_export, shutdown_metric_export
    from .telemetry.tracing import LifecycleTracer, configure_tracing, shutdown_tracing

    try:
        provider = configure_tracing(sidecar_version(), secrets=config.secrets())
        meters = configure_metric_export(sidecar_version())  # None, and no OTel metrics import, unless asked
    except ValueError as exc:  # an OTEL_* variable asks for what we cannot do
        print(f"mcp-sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    route_library_logs(log_format)
    tracer = LifecycleTracer(provider, config)
    _tune_gc()
    try:
        return anyio.run(_serve, path, config, log_format, tracer, meters, backend_options=_loop_options())
    finally:
        shutdown_tracing(provider)  # bounded: a dead collector cannot hold the exit
        shutdown_metric_export(meters)  # the last export (sessions ended at stop), bounded too


def _tune_gc() -> None:
    """Keep the collector's full passes off the event loop's back.

    With hundreds of servers the heap holds millions of objects, and each full collection
    walked all of them: 0.7-1.6 s with the loop stopped, eight times while 1,000 HTTP servers
    connected (`/livez` unanswered for as long). What was imported is never garbage: frozen,
    it is never walked again. A larger young generation lets per-request objects die before
    they are promoted, so the old generation grows, and is walked, far less often.
    Measured: no collection over 50 ms in the same start (benchmarks/README.md, "Many HTTP servers").
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_GENERATION, middle, old)


def _loop_options() -> dict[str, Any]:
    """uvloop where it is installed (a dependency, except on Windows): the loop's own work (polling,
    callbacks, socket I/O) is C there, ~10-15% of the gateway's CPU per tool call (benchmarks/)."""
    from importlib.util import find_spec

    return {"use_uvloop": find_spec("uvloop") is not None}


def _fetch_health(url: str) -> dict[str, Any]:
    import urllib.request  # here, not at the top: http.client and email cost `check` 0.1 s

    with urllib.request.urlopen(url.rstrip("/") + "/health/mcp", timeout=5) as response:
        return json.load(response)


def status_table(document: dict[str, Any]) -> str:
    """The `/health/mcp` document as a table a person can read at a glance."""
    from .redact import printable

    header = ("SERVER", "STATE", "CRITICALITY", "TRANSPORT", "FOR", "TOOLS", "RECONNECTS", "LAST ERROR")
    rows = [header]
    for server in document.get("servers", []):
        rows.append(
            (
                server["name"],
                server["state"],
                server["criticality"],
                server["transport"],
                format_age(time.time() - since) if (since := server.get("since")) else "-",
                str(len(server.get("tools") or [])),
                str(server.get("reconnect_attempts", 0)),
                printable((server.get("last_error") or "-")[:80]),  # a server's words: no ESC sequences
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    summary = (
        f"{document.get('status', '?')}: {document.get('active_count', 0)}/{document.get('total', 0)} active"
    )
    return "\n".join([summary, *lines])


def _status(url: str, raw: bool) -> int:
    import urllib.error

    try:
        document = _fetch_health(url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"mcp-sidecar: cannot read {url}/health/mcp: {reason}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(document, indent=2) if raw else status_table(document))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.config)
    if args.command == "status":
        return _status(args.url, args.json)
    return _run(args.config, args.log_format)


if __name__ == "__main__":
    sys.exit(main())
