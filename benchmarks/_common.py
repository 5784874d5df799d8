"""Helpers shared by the benchmarks: stdlib only, so the baseline venv can import it too.

Process helpers act only on pids the benchmark itself started (or that a manager it runs
started), and re-check `/proc/<pid>/cmdline` before signalling, so a recycled pid is never hit.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BEHAVING = REPO / "tests" / "servers" / "behaving.py"
TINY = BENCH_DIR / "tiny_server.py"
BASELINE_PYTHON = REPO / ".cache" / "bench-baseline" / "bin" / "python"
EVERYTHING_JS = (
    REPO
    / ".cache"
    / "npm"
    / "node_modules"
    / "@modelcontextprotocol"
    / "server-everything"
    / "dist"
    / "index.js"
)
LOCALHOST = "127.0.0.1"

Row = dict[str, Any]


def row(bench: str, claim: str, bound: str, measured: str, ok: bool | None, **data: Any) -> Row:
    """One line of the results table: the claim, its bound, what was measured, and the verdict."""
    return {"bench": bench, "claim": claim, "bound": bound, "measured": measured, "ok": ok, "data": data}


def say(text: str) -> None:
    print(text, flush=True)


# -- numbers ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "p90": percentile(values, 90),
        "max": max(values),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


# -- network ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOCALHOST, port)) == 0


# -- processes ----------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) from /proc/<pid>/stat, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_cpu_seconds() -> tuple[float, float]:
    """(all CPU time, stolen time) of this machine so far, over all CPUs (/proc/stat's `cpu` line).

    On a VM, "steal" is time a virtual CPU was ready to run but the hypervisor ran someone
    else: the same code measured 2-3x slower when a neighbour took 10% of the host. A result
    is comparable with another only if their steal shares are alike.
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(fields[:8]) / ticks, fields[7] / ticks


def reference_work_ms() -> float:
    """How long a fixed pure-Python loop takes here now (best of 5): the host's speed at the time.

    A VM's vCPU can be slowed by a neighbour without any steal being counted (a busy sibling
    hyperthread, a lower clock): beside each result, this says how fast the machine was.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process, in MB (0 if it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), 0.0)


def proc_state(pid: int) -> str | None:
    """One-letter process state (R, S, T, Z ...), or None when the pid is gone."""
    stat = _stat(pid)
    return stat[0] if stat else None


def is_dead(pid: int) -> bool:
    """Gone, or a zombie (it has exited and only waits to be reaped)."""
    state = proc_state(pid)
    return state is None or state in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(parent: int | None = None) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is `parent` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == parent:
                found.append((int(entry), stat[0]))
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# What the servers the benchmarks start have in their command lines.
SERVER_MARKERS = ("benchmarks/tiny_server.py", "behaving.py", "server-everything")


def kill_ours(pids: Iterable[int], *markers: str) -> list[int]:
    """SIGKILL each live pid whose command line contains one of `markers`; returns the pids it killed."""
    killed = []
    for pid in pids:
        if not is_dead(pid) and any(marker in cmdline(pid) for marker in markers):
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


async def wait_until_async(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """`wait_until` for a coroutine: sleeps on the event loop (which may be what reaps children)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


def read_pidfile(path: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            time.sleep(0.01)
    raise TimeoutError(f"no pid in {path} after {timeout:g}s")


def behaving_args(*flags: str) -> list[str]:
    return [str(BEHAVING), *flags]


# The healthy servers of the 8-server startup scenario. `everything` is the npm reference server
# (node, ~0.6 s of CPU to start), `tiny` is benchmarks/tiny_server.py (~30 ms), `behaving` is
# tests/servers/behaving.py (the Python SDK: ~1.4 s of CPU to start, mostly importing the SDK).
HEALTHY_KINDS = ("everything", "tiny", "behaving")


def default_healthy_kind() -> str:
    return "everything" if EVERYTHING_JS.is_file() and shutil.which("node") else "tiny"


def healthy_server(kind: str, name: str, server_python: str | None = None) -> tuple[str, list[str]]:
    """(command, args) of one healthy stdio server of `kind`."""
    server_python = server_python or sys.executable
    if kind == "everything":
        node = shutil.which("node")
        if node is None or not EVERYTHING_JS.is_file():
            raise RuntimeError("node or the npm reference servers are missing (make test installs them)")
        return node, [str(EVERYTHING_JS), "stdio"]
    if kind == "tiny":
        return server_python, ["-I", "-S", str(TINY)]
    if kind == "behaving":
        return server_python, [str(BEHAVING), "--name", name]
    raise ValueError(f"unknown server kind {kind!r}")


def hung_server(pidfile: Path, server_python: str | None = None) -> tuple[str, list[str]]:
    """(command, args) of a server that never answers `initialize` (it never imports the SDK)."""
    return server_python or sys.executable, [str(BEHAVING), "--hang-at-initialize", "--pidfile", str(pidfile)]


def result_line(payload: dict[str, Any]) -> str:
    """The one line a benchmark subprocess prints for `run_all.py` to collect."""
    import json

    return "RESULT " + json.dumps(payload)
