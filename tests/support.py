"""Helpers every kind of test needs: where things are, free ports, /proc, waiting with a deadline.

One copy of each, imported by the conftests, the e2e harness, the kit tests and the
browser driver (like `externals.py`, this folder is on the import path under pytest).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent
BEHAVING = REPO / "tests" / "servers" / "behaving.py"
NPM_MODULES = REPO / ".cache" / "npm" / "node_modules" / "@modelcontextprotocol"
EVERYTHING_JS = NPM_MODULES / "server-everything" / "dist" / "index.js"
FILESYSTEM_JS = NPM_MODULES / "server-filesystem" / "dist" / "index.js"
LOCALHOST = "127.0.0.1"

T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def proc_stat(pid: int) -> tuple[str, int, int, int, str] | None:
    """(state, ppid, pgrp, session, comm) from /proc/PID/stat, or None if gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    comm = data[data.index(b"(") + 1 : data.rindex(b")")].decode(errors="replace")
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), comm


def live_children(pid: int) -> list[int]:
    """Processes whose parent is `pid` and that have not exited (zombies left out), sorted."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := proc_stat(int(name))) and stat[1] == pid and stat[0] != "Z":
            found.append(int(name))
    return sorted(found)


def direct_children(pid: int) -> set[int]:
    """Children of every thread of `pid`, zombies included (cheap: /proc/PID/task/TID/children)."""
    found: set[int] = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            found.update(int(p) for p in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except OSError:
            continue
    return found


def listening_pids(port: int) -> set[int]:
    """The processes holding a socket that listens on TCP `port`, IPv4 or IPv6 (Node listens on
    `::`, which takes IPv4 too), from /proc."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):  # no IPv6 here
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:  # 0A: LISTEN
                    sockets.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if any(os.readlink(fd) in sockets for fd in (entry / "fd").iterdir()):
                pids.add(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


def spellings(secret: str) -> set[str]:
    """A secret as Python (repr), JSON and HTML write it, and as each writes the others' spellings
    (a repr inside a JSON log line, an error inside the page): search outputs for all of them."""
    found = {secret}
    for _ in range(2):
        found |= {spelled for text in found for spelled in _spelled(text)}
    return found


def _spelled(text: str) -> set[str]:
    return {
        repr(text)[1:-1],
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
        html.escape(text),
    }
