"""fastmcp's `create_proxy` in front of one upstream, over streamable HTTP: the peer in bench_gateway_compare.

Runs in its own venv (fastmcp pins its own dependencies; `make bench-fastmcp`), never imports `sidecar`:

    .cache/bench-fastmcp/bin/python benchmarks/fastmcp_proxy.py \
        --upstream http://127.0.0.1:8001/mcp --port 8002
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="the upstream's MCP URL (streamable HTTP)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args(argv)

    from fastmcp.server import create_proxy

    proxy = create_proxy(args.upstream, name="fastmcp-proxy")
    proxy.run(
        transport="http", host=args.host, port=args.port, path="/mcp", show_banner=False, log_level="WARNING"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
