"""A `Model` for the OpenAI Agents SDK that plays a fixed script: no LLM, no network.

Each turn answers with the next step: `CallTool(name, arguments)` (a function call the SDK
runs against the agent's MCP servers) or `Answer(template)` (the final message;
``{output}`` becomes the last tool output the SDK fed back). A step's tool name matches an
offered tool exactly or after a gateway prefix (``open_ticket`` is ``tickets__open_ticket``
through mcp-sidecar's gateway). The tools offered on every turn are recorded in `offered`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

__all__ = ["Answer", "CallTool", "ScriptedModel", "last_tool_output", "resolve_tool"]


@dataclass(frozen=True)
class CallTool:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    template: str


def resolve_tool(name: str, offered: Sequence[str], separator: str = "__") -> str:
    """The offered tool `name` stands for: itself, or the one offered tool `{prefix}{sep}{name}`."""
    if name in offered:
        return name
    matches = [tool for tool in offered if tool.endswith(separator + name)]
    if len(matches) != 1:
        raise LookupError(f"the script calls {name!r}, but the agent is offered {sorted(offered)}")
    return matches[0]


def last_tool_output(items: str | list[TResponseInputItem]) -> str:
    """The text of the last function call's output in the conversation so far ('' if none).

    The SDK feeds an MCP tool's result back as a list of ``input_text`` parts (or a string)."""
    if isinstance(items, str):
        return ""
    outputs = [
        item for item in items if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    if not outputs:
        return ""
    output = outputs[-1].get("output", "")
    if isinstance(output, list):
        return "\n".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
    return str(output)


class ScriptedModel(Model):
    """Answers each turn with the next step of `steps`; runs out with a LookupError."""

    def __init__(self, steps: Sequence[CallTool | Answer]) -> None:
        self._steps = list(steps)
        self.offered: list[list[str]] = []  # tool names per turn, as the SDK offered them

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
    ) -> ModelResponse:
        names = sorted(tool.name for tool in tools)
        self.offered.append(names)
        if not self._steps:
            raise LookupError("the script has no step left")
        step, turn = self._steps.pop(0), len(self.offered)
        if isinstance(step, CallTool):
            call = ResponseFunctionToolCall(
                type="function_call",
                id=f"fc_{turn}",
                call_id=f"call_{turn}",
                name=resolve_tool(step.name, names),
                arguments=json.dumps(step.arguments),
                status="completed",
            )
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        text = ResponseOutputText(
            type="output_text", text=step.template.format(output=last_tool_output(input)), annotations=[]
        )
        message = ResponseOutputMessage(
            type="message", id=f"msg_{turn}", role="assistant", status="completed", content=[text]
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the scripted model does not stream; use Runner.run")
