"""An MCP server offering what the MCP conformance suite's server scenarios ask for.

Run it as ``python tests/servers/conformance_upstream.py --port N`` (streamable HTTP at
``/mcp``, SSE responses, Host/Origin checked as the ``dns-rebinding-protection`` scenario
wants) or ``--transport stdio``. Built on the SDK's low-level ``Server`` so that every
result is exactly what a scenario reads (``@modelcontextprotocol/conformance@0.1.16``):

- tools ``test_simple_text``, ``test_image_content``, ``test_audio_content``,
  ``test_embedded_resource``, ``test_multiple_content_types``, ``test_tool_with_logging``,
  ``test_error_handling``, ``test_tool_with_progress``, ``test_sampling``,
  ``test_elicitation``, ``test_elicitation_sep1034_defaults``,
  ``test_elicitation_sep1330_enums``, ``json_schema_2020_12_tool``;
- prompts ``test_simple_prompt``, ``test_prompt_with_arguments``,
  ``test_prompt_with_embedded_resource``, ``test_prompt_with_image``;
- resources ``test://static-text``, ``test://static-binary``, ``test://watched-resource``
  and the template ``test://template/{id}/data``; completion, ``logging/setLevel``,
  ``resources/subscribe`` / ``unsubscribe``.

Both protocol eras: on initialize-era sessions sampling and elicitation are requests to
the client on the call's own stream; on 2026-07-28 they come back as an
``InputRequiredResult`` and are answered by the client's retry. 2026-07-28 clients can also
``subscriptions/listen`` (no events are ever published: the lists never change; the stream
ends when the server dies, which is what a watcher wants to see).

The suite's ``server-sse-polling`` scenario (pending, outside the 40 active checks) wants
a ``test_reconnection`` tool that closes its stream mid-call and resumes from an event
store; it is not offered.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import struct
import sys
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

__all__ = ["build_server", "main", "parse_args"]

Ctx = ServerRequestContext[Any, Any]
ToolResult = types.CallToolResult | types.InputRequiredResult


# -- payloads, made here rather than pasted as opaque base64 ---------------------------------------


def _png_1x1(red: int, green: int, blue: int) -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8 bits, truecolour
    pixels = zlib.compress(bytes([0, red, green, blue]))  # filter byte 0, then one pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _wav_silence(milliseconds: int = 10, rate: int = 8000) -> bytes:
    """A valid mono 16-bit PCM WAV of silence."""
    frames = rate * milliseconds // 1000
    data = b"\x00\x00" * frames
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", len(data)) + data)
    )


PNG = base64.b64encode(_png_1x1(255, 0, 0)).decode()
WAV = base64.b64encode(_wav_silence()).decode()

SIMPLE_TEXT = "This is a simple text response for testing."
ERROR_TEXT = "This tool intentionally returns an error for testing"
STATIC_TEXT = "This is the content of the static text resource."
TEMPLATE = "test://template/{id}/data"
_TEMPLATE_RE = re.compile(r"^test://template/(?P<id>[^/]+)/data$")
_NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}
_LOG_ORDER: tuple[types.LoggingLevel, ...] = (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"
)  # fmt: skip
_STEP = 0.05  # the scenarios ask for ~50 ms between log lines and between progress steps
_MAX_SESSIONS = 1000  # per-session settings kept (logging level, subscriptions); oldest dropped


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _image() -> types.ImageContent:
    return types.ImageContent(type="image", data=PNG, mime_type="image/png")


def _embedded(uri: str, mime_type: str, text: str) -> types.EmbeddedResource:
    contents = types.TextResourceContents(uri=uri, mime_type=mime_type, text=text)
    return types.EmbeddedResource(type="resource", resource=contents)


# -- elicitation schemas the scenarios inspect ---------------------------------------------------------

USER_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}

DEFAULTS_SCHEMA: dict[str, Any] = {  # SEP-1034: a default for every primitive type
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
}

ENUMS_SCHEMA: dict[str, Any] = {  # SEP-1330: the five enum shapes
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}

JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


def _string_args(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {n: {"type": "string"} for n in names}, "required": list(names)}


def _tool(name: str, description: str, schema: dict[str, Any] = _NO_ARGS) -> types.Tool:
    return types.Tool(name=name, description=description, input_schema=schema)


TOOLS: dict[str, types.Tool] = {
    tool.name: tool
    for tool in (
        _tool("test_simple_text", "Returns one text block."),
        _tool("test_image_content", "Returns a 1x1 PNG."),
        _tool("test_audio_content", "Returns a short WAV."),
        _tool("test_embedded_resource", "Returns an embedded resource."),
        _tool("test_multiple_content_types", "Returns text, an image and an embedded resource."),
        _tool("test_tool_with_logging", "Logs three lines while it runs."),
        _tool("test_error_handling", "Always fails (isError)."),
        _tool("test_tool_with_progress", "Reports progress 0, 50, 100 of 100."),
        _tool("test_sampling", "Asks the client's LLM to answer a prompt.", _string_args("prompt")),
        _tool("test_elicitation", "Asks the user for a username and an email.", _string_args("message")),
        _tool(
            "test_elicitation_sep1034_defaults", "Elicits a form whose fields all have defaults (SEP-1034)."
        ),
        _tool("test_elicitation_sep1330_enums", "Elicits a form with the five enum shapes (SEP-1330)."),
        _tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12),
    )
}

PROMPTS: dict[str, types.Prompt] = {
    prompt.name: prompt
    for prompt in (
        types.Prompt(name="test_simple_prompt", description="A prompt without arguments."),
        types.Prompt(
            name="test_prompt_with_arguments",
            description="A prompt with two required arguments.",
            arguments=[
                types.PromptArgument(name="arg1", description="First test argument", required=True),
                types.PromptArgument(name="arg2", description="Second test argument", required=True),
            ],
        ),
        types.Prompt(
            name="test_prompt_with_embedded_resource",
            description="A prompt that embeds the resource it is given.",
            arguments=[types.PromptArgument(name="resourceUri", description="URI to embed", required=True)],
        ),
        types.Prompt(name="test_prompt_with_image", description="A prompt with an image."),
    )
}

RESOURCES: dict[str, tuple[types.Resource, types.TextResourceContents | types.BlobResourceContents]] = {
    "test://static-text": (
        types.Resource(
            uri="test://static-text", name="static-text", description="A fixed text.", mime_type="text/plain"
        ),
        types.TextResourceContents(uri="test://static-text", mime_type="text/plain", text=STATIC_TEXT),
    ),
    "test://static-binary": (
        types.Resource(
            uri="test://static-binary", name="static-binary", description="A 1x1 PNG.", mime_type="image/png"
        ),
        types.BlobResourceContents(uri="test://static-binary", mime_type="image/png", blob=PNG),
    ),
    "test://watched-resource": (
        types.Resource(
            uri="test://watched-resource",
            name="watched-resource",
            description="A resource to subscribe to.",
            mime_type="text/plain",
        ),
        types.TextResourceContents(
            uri="test://watched-resource", mime_type="text/plain", text="Watched resource content."
        ),
    ),
}

TEMPLATES = [
    types.ResourceTemplate(
        uri_template=TEMPLATE,
        name="template-data",
        description="Data for an id, substituted into the URI.",
        mime_type="application/json",
    )
]

# Completion candidates: prompt argument values and template ids, filtered by prefix.
COMPLETIONS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("ref/prompt", "test_prompt_with_arguments", "arg1"): ("paris", "park", "party", "test", "testValue1"),
    ("ref/prompt", "test_prompt_with_arguments", "arg2"): ("world", "testValue2"),
    ("ref/resource", TEMPLATE, "id"): ("1", "12", "123"),
}


def complete(kind: str, name: str, argument: str, prefix: str) -> types.Completion:
    """Candidates for one argument of a prompt or template that start with `prefix`."""
    values = [v for v in COMPLETIONS.get((kind, name, argument), ()) if v.startswith(prefix)]
    return types.Completion(values=values, total=len(values), has_more=False)


def template_contents(uri: str) -> types.TextResourceContents | None:
    """`test://template/{id}/data` with the id substituted, or None when `uri` is not one."""
    match = _TEMPLATE_RE.match(uri)
    if match is None:
        return None
    item = match["id"]
    data = {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}
    text = json.dumps(data, separators=(",", ":"))
    return types.TextResourceContents(uri=uri, mime_type="application/json", text=text)


def get_prompt(name: str, arguments: dict[str, str]) -> types.GetPromptResult:
    """A prompt's messages; unknown names and missing arguments are invalid params."""
    prompt = PROMPTS.get(name)
    if prompt is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {name}")
    missing = [a.name for a in prompt.arguments or () if a.required and a.name not in arguments]
    if missing:
        raise MCPError(types.INVALID_PARAMS, f"Missing required arguments: {', '.join(missing)}")

    def user(content: Any) -> types.PromptMessage:
        return types.PromptMessage(role="user", content=content)

    if name == "test_simple_prompt":
        messages = [user(_text("This is a simple prompt for testing."))]
    elif name == "test_prompt_with_arguments":
        text = f"Prompt with arguments: arg1='{arguments['arg1']}', arg2='{arguments['arg2']}'"
        messages = [user(_text(text))]
    elif name == "test_prompt_with_embedded_resource":
        resource = _embedded(arguments["resourceUri"], "text/plain", "Embedded resource content for testing.")
        messages = [user(resource), user(_text("Please process the embedded resource above."))]
    else:
        messages = [user(_image()), user(_text("Please analyze the image above."))]
    return types.GetPromptResult(description=prompt.description, messages=messages)


# -- per-session settings ---------------------------------------------------------------------------------


class SessionSettings:
    """Logging level and subscriptions per client session, keyed by `Mcp-Session-Id` (stdio: one)."""

    def __init__(self) -> None:
        self._levels: OrderedDict[str, types.LoggingLevel] = OrderedDict()
        self._subscriptions: OrderedDict[str, set[str]] = OrderedDict()

    @staticmethod
    def key(ctx: Ctx) -> str:
        request = ctx.request
        headers = getattr(request, "headers", None)
        return (headers.get("mcp-session-id") if headers is not None else None) or "-"

    @staticmethod
    def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > _MAX_SESSIONS:
            store.popitem(last=False)

    def set_level(self, key: str, level: types.LoggingLevel) -> None:
        self._remember(self._levels, key, level)

    def admits(self, key: str, level: types.LoggingLevel) -> bool:
        """Whether a line at `level` goes out: at or above the level the session set (all if unset)."""
        threshold = self._levels.get(key, "debug")
        return _LOG_ORDER.index(level) >= _LOG_ORDER.index(threshold)

    def subscribe(self, key: str, uri: str) -> None:
        self._remember(self._subscriptions, key, self._subscriptions.get(key, set()) | {uri})

    def unsubscribe(self, key: str, uri: str) -> None:
        if key in self._subscriptions:
            self._subscriptions[key].discard(uri)

    def subscribed(self, key: str) -> set[str]:
        return set(self._subscriptions.get(key, ()))


# -- asking the client: a request on the call's stream (initialize era) or an InputRequiredResult ------


def _modern(ctx: Ctx) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


async def ask(
    ctx: Ctx, params: types.CallToolRequestParams, request: types.CreateMessageRequest | types.ElicitRequest
) -> types.CreateMessageResult | types.ElicitResult | types.InputRequiredResult:
    """The client's answer to `request`; in 2026-07-28, an InputRequiredResult until its retry answers."""
    sampling = isinstance(request, types.CreateMessageRequest)
    result_type = types.CreateMessageResult if sampling else types.ElicitResult
    if _modern(ctx):
        answer = (params.input_responses or {}).get("input")
        if answer is None:
            return types.InputRequiredResult(input_requests={"input": request})
        if not isinstance(answer, result_type):
            raise MCPError(types.INVALID_PARAMS, f"expected a {result_type.__name__} as input response")
        return answer
    related = ServerMessageMetadata(related_request_id=ctx.request_id)  # rides this call's SSE stream
    return await ctx.session.send_request(request, result_type, metadata=related)


def _sampling_request(prompt: str) -> types.CreateMessageRequest:
    message = types.SamplingMessage(role="user", content=_text(prompt))
    params = types.CreateMessageRequestParams(messages=[message], max_tokens=100)
    return types.CreateMessageRequest(params=params)


def _elicit_request(message: str, schema: dict[str, Any]) -> types.ElicitRequest:
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


# -- the server ---------------------------------------------------------------------------------------------


def build_server(name: str = "conformance-upstream") -> Server[Any]:
    """The server, with every handler the scenarios reach."""
    settings = SessionSettings()

    async def log(ctx: Ctx, level: types.LoggingLevel, text: str) -> None:
        if not _modern(ctx) and not settings.admits(SessionSettings.key(ctx), level):
            return
        # Request-scoped: the line rides the call's own stream, where the scenario reads it. In
        # 2026-07-28 the SDK sends only what the caller's per-request `_meta` opted in to.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await ctx.session.send_log_message(level, text, logger=name, related_request_id=ctx.request_id)

    async def with_logging(ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        lines = ("Tool execution started", "Tool processing data", "Tool execution completed")
        for i, line in enumerate(lines):
            if i:
                await anyio.sleep(_STEP)
            await log(ctx, "info", line)
        return types.CallToolResult(content=[_text("Logged three lines.")])

    async def with_progress(ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        for i, progress in enumerate((0, 50, 100)):
            if i:
                await anyio.sleep(_STEP)
            await ctx.session.report_progress(progress, 100)  # a no-op without a progress token
        return types.CallToolResult(content=[_text("Progress reported: 0, 50, 100 of 100.")])

    async def sampling(ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        prompt = str((params.arguments or {}).get("prompt", ""))
        answer = await ask(ctx, params, _sampling_request(prompt))
        if isinstance(answer, types.InputRequiredResult):
            return answer
        assert isinstance(answer, types.CreateMessageResult)
        text = answer.content.text if isinstance(answer.content, types.TextContent) else str(answer.content)
        return types.CallToolResult(content=[_text(f"LLM response: {text}")])

    def eliciting(message: Callable[[types.CallToolRequestParams], str], schema: dict[str, Any], prefix: str):
        async def tool(ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
            answer = await ask(ctx, params, _elicit_request(message(params), schema))
            if isinstance(answer, types.InputRequiredResult):
                return answer
            assert isinstance(answer, types.ElicitResult)
            content = json.dumps(answer.content or {}, sort_keys=True)
            return types.CallToolResult(content=[_text(f"{prefix}action={answer.action}, content={content}")])

        return tool

    async def fixed(content: list[Any], *, is_error: bool = False) -> ToolResult:
        return types.CallToolResult(content=content, is_error=is_error)

    mixed = [
        _text("Multiple content types test:"),
        _image(),
        _embedded("test://mixed-content-resource", "application/json", '{"test":"data","value":123}'),
    ]
    embedded = _embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")
    audio = types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")
    handlers: dict[str, Callable[[Ctx, types.CallToolRequestParams], Awaitable[ToolResult]]] = {
        "test_simple_text": lambda ctx, p: fixed([_text(SIMPLE_TEXT)]),
        "test_image_content": lambda ctx, p: fixed([_image()]),
        "test_audio_content": lambda ctx, p: fixed([audio]),
        "test_embedded_resource": lambda ctx, p: fixed([embedded]),
        "test_multiple_content_types": lambda ctx, p: fixed(mixed),
        "test_error_handling": lambda ctx, p: fixed([_text(ERROR_TEXT)], is_error=True),
        "json_schema_2020_12_tool": lambda ctx, p: fixed([_text(json.dumps(p.arguments or {}))]),
        "test_tool_with_logging": with_logging,
        "test_tool_with_progress": with_progress,
        "test_sampling": sampling,
        "test_elicitation": eliciting(
            lambda p: str((p.arguments or {}).get("message", "")), USER_INFO_SCHEMA, "User response: "
        ),
        "test_elicitation_sep1034_defaults": eliciting(
            lambda p: "Please review and update the form fields with defaults", DEFAULTS_SCHEMA,
            "Elicitation completed: ",
        ),
        "test_elicitation_sep1330_enums": eliciting(
            lambda p: "Please select options from the enum fields", ENUMS_SCHEMA, "Elicitation completed: "
        ),
    }  # fmt: skip
    assert handlers.keys() == TOOLS.keys()

    async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(TOOLS.values()))

    async def call_tool(ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        handler = handlers.get(params.name)
        if handler is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        return await handler(ctx, params)

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=list(PROMPTS.values()))

    async def prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return get_prompt(params.name, dict(params.arguments or {}))

    async def list_resources(
        ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[resource for resource, _ in RESOURCES.values()])

    async def list_templates(
        ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=TEMPLATES)

    async def read(ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        contents = RESOURCES[uri][1] if uri in RESOURCES else template_contents(uri)
        if contents is None:
            raise MCPError(-32002, f"Resource not found: {uri}")  # the spec's resource-not-found code
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        settings.subscribe(SessionSettings.key(ctx), str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        settings.unsubscribe(SessionSettings.key(ctx), str(params.uri))
        return types.EmptyResult()

    async def completion(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        ref = params.ref
        target = ref.name if isinstance(ref, types.PromptReference) else ref.uri
        values = complete(ref.type, target, params.argument.name, params.argument.value)
        return types.CompleteResult(completion=values)

    async def set_level(ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        settings.set_level(SessionSettings.key(ctx), params.level)
        return types.EmptyResult()

    with warnings.catch_warnings():  # logging/setLevel is deprecated in 2026-07-28, alive before it
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return Server(
            name,
            version="1.0.0",
            get_tool_input_schema=lambda tool: TOOLS[tool].input_schema if tool in TOOLS else None,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_prompts=list_prompts,
            on_get_prompt=prompt,
            on_list_resources=list_resources,
            on_list_resource_templates=list_templates,
            on_read_resource=read,
            on_subscribe_resource=subscribe,
            on_unsubscribe_resource=unsubscribe,
            on_completion=completion,
            on_set_logging_level=set_level,
            on_subscriptions_listen=ListenHandler(InMemorySubscriptionBus()),
        )


# -- running it ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transport", choices=("streamable-http", "stdio"), default="streamable-http")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--json-response", action="store_true", help="JSON bodies instead of SSE streams")
    p.add_argument("--name", default="conformance-upstream", help="serverInfo.name")
    p.add_argument("--log-level", default="warning", help="uvicorn's log level (stderr)")
    return p.parse_args(argv)


async def serve_stdio(server: Server[Any]) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve_http(server: Server[Any], args: argparse.Namespace) -> None:
    import uvicorn

    # host=127.0.0.1 turns the SDK's Host/Origin check on (the DNS-rebinding scenario).
    app = server.streamable_http_app(host=args.host, json_response=args.json_response)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    anyio.run(uvicorn.Server(config).serve)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server = build_server(args.name)
    if args.transport == "stdio":
        anyio.run(serve_stdio, server)
    else:
        serve_http(server, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
