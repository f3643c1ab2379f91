"""The builtin engine: what answers when no model is configured (offline, tests, a fresh install).

It never pretends to be a model. A plain prompt gets an explanation that no model is configured and
how to configure one; explicit commands still work on the conversation's files, through the same
tool calls a model would make (so they show up as `tool.call` / `tool.result` events and land in the
working tree the snapshot route freezes):

    /help                      this list
    /ls [directory]            list files
    /cat <path>                show a file
    /write <path>              write a file: the lines after the command are its content
    /rm <path>                 delete a file
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping, Sequence

PROVIDER = "builtin"

HELP = """Commands: `/ls [directory]`, `/cat <path>`, `/write <path>` (the lines after it are the file's content), `/rm <path>`, `/help`."""

NOT_CONFIGURED = (
    "No AI model is configured on this server, so nothing here is generated: I am the builtin engine. "
    "To chat with a model, set FASTEST_AI_PROVIDER (`openai` for any OpenAI-compatible server such as "
    "OpenAI, llama.cpp or Ollama, `anthropic`, or `workers-ai` on Cloudflare) with FASTEST_AI_MODEL, "
    "and FASTEST_AI_BASE_URL / FASTEST_AI_API_KEY where the provider needs them, then restart the server. "
    "Meanwhile the file commands work. " + HELP
)

_COMMANDS = {"/ls": "list_files", "/cat": "read_file", "/write": "write_file", "/rm": "delete_file"}


def command_call(prompt: str) -> tuple[str, dict[str, Any]] | None:
    """The tool call a command prompt stands for, or None for anything else."""
    first, _, rest = prompt.partition("\n")
    word, _, argument = first.strip().partition(" ")
    tool = _COMMANDS.get(word)
    if tool is None:
        return None
    argument = argument.strip()
    if tool == "list_files":
        return tool, {"path": argument}
    if tool == "write_file":
        return tool, {"path": argument, "content": rest}
    return tool, {"path": argument}


class BuiltinEngine:
    provider = PROVIDER
    model = PROVIDER

    async def complete(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Mapping[str, Any]:
        """No model, no answer: `content` is empty and `configured` False, so a caller (a merge
        offering an AI-combined version, a summary) knows to do without."""
        return {"content": "", "model": self.model, "provider": self.provider, "configured": False, "message": NOT_CONFIGURED}

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None, **options: Any
    ) -> AsyncIterator[Mapping[str, Any]]:
        last = messages[-1] if messages else {"role": "user", "content": ""}
        if last.get("role") == "tool":
            yield {"type": "delta", "content": _tool_answer(messages)}
        else:
            prompt = str(last.get("content") or "")
            call = command_call(prompt)
            if call is not None:
                name, arguments = call
                yield {"type": "tool_call", "id": "call_builtin", "name": name, "arguments": json.dumps(arguments)}
            else:
                yield {"type": "delta", "content": HELP if prompt.strip() == "/help" else NOT_CONFIGURED}
        yield {"type": "done", "model": self.model, "provider": self.provider, "finish_reason": "stop"}


def _tool_answer(messages: Sequence[Mapping[str, Any]]) -> str:
    """Say what the command did: the tool's result, a file in a code block."""
    result = str(messages[-1].get("content") or "")
    name = ""
    for message in reversed(messages[:-1]):
        if message.get("role") == "assistant" and message.get("tool_calls"):
            name = message["tool_calls"][0]["function"]["name"]
            break
    if name == "read_file" and not result.startswith("Error"):
        return f"```\n{result}\n```"
    return result
