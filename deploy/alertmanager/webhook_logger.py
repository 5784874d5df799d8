"""An example Alertmanager webhook receiver: one JSON line per alert on stdout.

The docker-compose stack runs it as the `webhook` service so that routed alerts can be seen
with `docker compose logs webhook`. Standard library only.

    python deploy/alertmanager/webhook_logger.py --host 0.0.0.0 --port 9095
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20  # Alertmanager batches are small; refuse anything absurd


def alert_lines(receiver: str, payload: dict[str, Any]) -> list[str]:
    """One line per alert of an Alertmanager webhook payload (version 4)."""
    return [
        json.dumps(
            {
                "receiver": receiver,
                "status": alert.get("status"),
                "alertname": alert.get("labels", {}).get("alertname"),
                "severity": alert.get("labels", {}).get("severity"),
                "server": alert.get("labels", {}).get("server"),
                "instance": alert.get("labels", {}).get("instance"),
                "summary": alert.get("annotations", {}).get("summary"),
                "startsAt": alert.get("startsAt"),
                "endsAt": alert.get("endsAt"),
            },
            sort_keys=True,
        )
        for alert in payload.get("alerts", [])
    ]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self.send_error(413 if length else 411)
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_error(400, "body is not JSON")
            return
        for line in alert_lines(self.path.strip("/") or "default", payload):
            print(line, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # healthcheck
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the alert lines are the log


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Log Alertmanager webhook notifications.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9095)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on {args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
