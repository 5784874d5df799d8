"""A tiny stdio MCP server in raw JSON-RPC: no SDK import, so spawn + initialize takes ~30 ms.

Used by the kill/restart soak benchmark, where a real SDK server's ~1 s import would make
200 cycles take minutes. It speaks just enough of the legacy (initialize) era:

- `initialize` -> protocolVersion 2025-06-18, a `tools` capability, serverInfo `tiny`
- `tools/list` -> one tool, `echo`; `tools/call` echoes `text`
- `ping` -> {}
- `server/discover` (the 2026-07-28 probe) and anything else -> JSON-RPC error -32601
- notifications (no `id`) are ignored; EOF on stdin ends the process

Run it as `python -I -S benchmarks/tiny_server.py` (stdlib only).
"""

import json
import sys

PROTOCOL_VERSION = "2025-06-18"
TOOL = {
    "name": "echo",
    "description": "Return the text unchanged.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


def answer(request_id, method, params):
    """(result, error) for one request."""
    if method == "initialize":
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "tiny", "version": "1.0"},
        }, None
    if method == "ping":
        return {}, None
    if method == "tools/list":
        return {"tools": [TOOL]}, None
    if method == "tools/call" and (params or {}).get("name") == "echo":
        text = str(((params or {}).get("arguments") or {}).get("text", ""))
        return {"content": [{"type": "text", "text": text}], "isError": False}, None
    return None, {"code": -32601, "message": f"Method not found: {method}"}


def main():
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or "method" not in message or "id" not in message:
            continue  # a notification or a response: nothing to answer
        result, error = answer(message["id"], message["method"], message.get("params"))
        reply = {"jsonrpc": "2.0", "id": message["id"]}
        if error is not None:
            reply["error"] = error
        else:
            reply["result"] = result
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
