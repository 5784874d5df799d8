"""A stdio MCP server whose one tool answers with the `traceparent` its request carried in `_meta`."""

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

server: MCPServer[Any] = MCPServer("meta")


@server.tool()
def traceparent(ctx: Context) -> str:
    meta = ctx.request_context.meta
    fields = meta.model_dump() if hasattr(meta, "model_dump") else dict(meta or {})
    return str(fields.get("traceparent"))


server.run("stdio")
