"""Poll a sidecar's ops endpoints and time every answer, in a process of its own.

    python chaos_poll.py http://127.0.0.1:9464 /livez=0.1 /metrics=0.1 /health/mcp=0.25

One thread per path GETs it every PERIOD seconds and prints one JSON line per answer on
stdout: {"path", "t" (time.monotonic(), the same clock as the parent's on Linux), "status",
"seconds", "body"}. It runs until its stdin closes (so it ends with whoever started it).
Stdlib only, and apart from the process that checks the samples: parsing a scrape holds
that process's GIL for ~10 ms, which would otherwise count in the next answer's time.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request

__all__ = ["main"]

_TIMEOUT = 5.0
_WITH_BODY = ("/metrics", "/health/mcp")


def poll(base: str, path: str, period: float, stop: threading.Event, out: threading.Lock) -> None:
    tick = time.monotonic()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(base + path, timeout=_TIMEOUT) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except OSError as error:
            status, body = -1, repr(error).encode()
        seconds = time.perf_counter() - started
        record = {"path": path, "t": time.monotonic(), "status": status, "seconds": seconds}
        if path in _WITH_BODY or status != 200:
            record["body"] = body.decode(errors="replace")
        line = json.dumps(record)
        with out:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):  # the reader is gone
                stop.set()
        tick = max(tick + period, time.monotonic())
        stop.wait(tick - time.monotonic())


def main(argv: list[str]) -> int:
    base, specs = argv[0], argv[1:]
    stop, out = threading.Event(), threading.Lock()
    threads = []
    for spec in specs:
        path, _, period = spec.partition("=")
        threads.append(
            threading.Thread(target=poll, args=(base, path, float(period), stop, out), daemon=True)
        )
        threads[-1].start()
    sys.stdin.read()  # until the parent closes it, or dies
    stop.set()
    for thread in threads:  # a line half written at exit would be a broken record
        thread.join(_TIMEOUT + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
