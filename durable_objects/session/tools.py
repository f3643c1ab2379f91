"""The working tree the agent edits: its file tools (list, read, write, delete; `ask_question` is
routed to the questions), and the rebase after a snapshot froze the overlay."""

from __future__ import annotations

import json
from typing import Any

from durable_objects.session.state import CONTEXT_KEY, SessionPart, _Refusal
from fastest.errors import ApiError

TOOL_RESULT_LIMIT = 64 * 1024  # what a tool result may put into the model's context

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "list_files", "description": "List the files of the working tree (optionally under a directory).",
        "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "A directory; empty for all."}}},
    }},
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a text file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }},
    {"type": "function", "function": {
        "name": "write_file", "description": "Create or replace a file with this content.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                       "required": ["path", "content"]},
    }},
    {"type": "function", "function": {
        "name": "delete_file", "description": "Delete a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }},
    {"type": "function", "function": {
        "name": "ask_question", "description": "Ask the user and wait for the answer.",
        "parameters": {"type": "object", "properties": {
            "question": {"type": "string"},
            "options": {"type": "array", "items": {"type": "string"}},
        }, "required": ["question"]},
    }},
]


class FileTools(SessionPart):
    """The agent's file tools over the working tree (a part of `ConversationSession`)."""

    def working_tree(self, context: dict[str, Any]):
        """The conversation's working tree: its workspace's snapshot with the agent's edits over it."""
        from fastest.services.conversations.working_tree import WorkingTree

        return WorkingTree(self._require_platform(), self.storage, context["user_id"], context.get("manifest_hash"),
                           holder=self.name)

    async def _tool(self, turn_id: str, call: dict[str, Any], context: dict[str, Any]) -> None:
        name = call["function"]["name"]
        await self.emit("tool.call", {"turn_id": turn_id, "call_id": call["id"], "name": name, "arguments": call["function"]["arguments"]})
        ok = True
        try:
            arguments = json.loads(call["function"]["arguments"] or "{}")
            if not isinstance(arguments, dict):
                raise ValueError
        except ValueError:
            arguments, ok, result = {}, False, "Error: the arguments are not a JSON object."
        if ok:
            try:
                result = await self._run_tool(turn_id, call["id"], name, arguments, context)
            except ApiError as error:
                ok, result = False, f"Error: {error.message}"
        result = result[:TOOL_RESULT_LIMIT]
        await self._add_message({"role": "tool", "tool_call_id": call["id"], "name": name, "content": result, "ok": ok, "turn_id": turn_id})
        await self.emit("tool.result", {"turn_id": turn_id, "call_id": call["id"], "name": name, "ok": ok, "result": result})

    async def _run_tool(self, turn_id: str, call_id: str, name: str, arguments: dict[str, Any], context: dict[str, Any]) -> str:
        tree = self.working_tree(context)
        if name == "list_files":
            files = await tree.list_files(str(arguments.get("path") or ""))
            return "\n".join(f"{f['path']} ({f['size']} bytes)" for f in files) or "(no files)"
        if name == "read_file":
            return await tree.read_file(arguments.get("path"))
        if name == "write_file":
            written = await tree.write_file(arguments.get("path"), arguments.get("content"))
            await self.emit("file.changed", {"turn_id": turn_id, "path": written["path"], "action": "created" if written["created"] else "modified",
                                             "hash": written["hash"], "size": written["size"]})
            return f"Wrote {written['path']} ({written['size']} bytes)."
        if name == "delete_file":
            deleted = await tree.delete_file(arguments.get("path"))
            await self.emit("file.changed", {"turn_id": turn_id, "path": deleted["path"], "action": "deleted"})
            return f"Deleted {deleted['path']}."
        if name == "ask_question":
            return await self._ask(turn_id, call_id, arguments)
        return f"Error: no tool named {name!r}."

    async def _rebase(self, body: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """A snapshot froze the overlay `frozen` into the tree `manifest_hash`: that tree becomes
        the base, and what was frozen leaves the overlay."""
        manifest_hash, frozen = body.get("manifest_hash"), body.get("frozen")
        if not isinstance(manifest_hash, str) or not isinstance(frozen, dict):
            raise _Refusal(422, "validation_failed", "manifest_hash and frozen are required.")
        await self.working_tree(context).rebase(frozen)
        context["manifest_hash"] = manifest_hash
        context["snapshot_id"] = body.get("snapshot_id")  # the parent of the next snapshot
        await self.storage.put(CONTEXT_KEY, context)
        await self.emit("conversation.snapshot", {"manifest_hash": manifest_hash, "snapshot_id": body.get("snapshot_id")})
        return {"context": context}
