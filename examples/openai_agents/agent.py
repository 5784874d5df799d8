"""An IT-helpdesk agent on the OpenAI Agents SDK whose one MCP server is mcp-sidecar's gateway.

    mcp-sidecar run -c examples/openai_agents/sidecar.yaml &
    python examples/openai_agents/agent.py "Ada Lovelace cannot reach the VPN, open a ticket"
    python examples/openai_agents/agent.py --model gpt-5-mini "..."      # a real model (OPENAI_API_KEY)

The agent connects once, to the gateway, and sees the tools of the servers that are up
right now (``directory__find_employee``, ``tickets__open_ticket`` ...): the tool list is
fetched on every turn (`cache_tools_list=False`), so a server that died is not offered to
the model and no turn is wasted on it. Without ``--model`` a scripted model (no LLM, no
network) looks the requester up and opens the ticket, which shows the wiring end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # traces go to the sidecar's OTLP, not to a SaaS

from agents import Agent, Model, Runner, RunResult, set_tracing_disabled
from agents.mcp import MCPServerStreamableHttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scripted_model import Answer, CallTool, ScriptedModel

__all__ = ["INSTRUCTIONS", "answer", "ask", "build_agent", "demo_script", "gateway_server", "main"]

GATEWAY_URL = "http://127.0.0.1:9465/mcp"
INSTRUCTIONS = (
    "You are the IT helpdesk agent of Example Corp. Look people up in the company directory "
    "before you act for them, open a ticket for every problem you cannot solve yourself, and "
    "tell the requester its id. Use only the tools you are offered right now."
)


def gateway_server(url: str = GATEWAY_URL, *, timeout: float = 30.0) -> MCPServerStreamableHttp:
    """The agent's one MCP server: the gateway, tool list fetched fresh on every turn.

    Not cached: on mcp 2.x the SDK negotiates 2026-07-28 with the gateway and never opens a
    `subscriptions/listen` stream, so it is not told when the list changes; it has to ask."""
    return MCPServerStreamableHttp(
        params={"url": url, "timeout": timeout},
        name="mcp-sidecar",
        cache_tools_list=False,
        client_session_timeout_seconds=timeout,
    )


def build_agent(server: MCPServerStreamableHttp, model: str | Model) -> Agent:
    return Agent(name="helpdesk", instructions=INSTRUCTIONS, mcp_servers=[server], model=model)


def demo_script(name: str, email: str, title: str) -> list[CallTool | Answer]:
    """What a model would do for 'NAME has a problem, open a ticket': look up, open, report.
    (A scripted model cannot read the directory's answer, so the email comes with the script.)"""
    return [
        CallTool("find_employee", {"name": name}),
        CallTool("open_ticket", {"title": title, "requester_email": email, "priority": "high"}),
        Answer("Done: {output}"),
    ]


async def answer(server: MCPServerStreamableHttp, model: str | Model, question: str) -> RunResult:
    """One question to the agent over an open connection to the gateway."""
    set_tracing_disabled(True)
    return await Runner.run(build_agent(server, model), question)


async def ask(url: str, question: str, model: str | Model) -> RunResult:
    """One question to the agent, over a connection of its own to the gateway."""
    async with gateway_server(url) as server:
        return await answer(server, model, question)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("question", nargs="?", default="Ada Lovelace cannot reach the VPN, open a ticket")
    p.add_argument("--url", default=GATEWAY_URL, help="the gateway's MCP endpoint")
    p.add_argument("--model", help="an OpenAI model name (needs OPENAI_API_KEY); default: scripted")
    args = p.parse_args(argv)
    model: str | Model = args.model or ScriptedModel(
        demo_script("Ada Lovelace", "ada@example.com", args.question)
    )
    result = asyncio.run(ask(args.url, args.question, model))
    print(result.final_output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
