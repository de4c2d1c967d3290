"""The OpenAI chat-completions protocol, as far as this server speaks it, and its mapping to canonical messages.

A client's request is validated here (``parse_request``: a ``BadRequest`` names the field and what was
wrong); its messages become the canonical conversation the runtime and the backends speak
(docs/design.md): ``system`` (and ``developer``) messages become the intro of the system prompt that
lists the client's tools the way agent/prompt.py does, an assistant message with ``tool_calls`` becomes
an assistant step (its ``reasoning_content``, else its ``content``, is the thought), and a ``tool``
message becomes an observation named after the call it answers. The model's reply is parsed with
agent/wire.py: an Action becomes ``tool_calls``, an Answer becomes ``content``, and the thought travels
as ``reasoning_content`` (the field several OpenAI-compatible servers use for it), so a client that
sends the conversation back gives the model its own thoughts again.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentdistill.agent.prompt import system_prompt
from agentdistill.agent.wire import WireFormatError, parse_step
from agentdistill.llm.base import Completion
from agentdistill.tools.registry import ToolRegistry
from agentdistill.tools.spec import Tool

TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"


class BadRequest(ValueError):
    """A request the client can fix: becomes a 4xx with this message."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code


class _Model(BaseModel):
    # Clients send many fields this server does not use (top_p, seed, user, ...): they are ignored, not errors.
    model_config = ConfigDict(extra="ignore", strict=True)


class FunctionSpec(_Model):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolSpec(_Model):
    type: Literal["function"]
    function: FunctionSpec


class CalledFunction(_Model):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class ContentPart(_Model):
    type: Literal["text"]
    text: str


class Message(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"]
    function: NamedFunction


class ChatRequest(_Model):
    model: str
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int = Field(default=1, ge=1, le=4)
    stop: str | list[str] | None = None

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


def parse_request(body: bytes) -> ChatRequest:
    """The validated request, or a ``BadRequest`` that names the first problems and where they are."""
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise BadRequest(f"the request body is not valid JSON ({errors[0]['msg']})") from None
        parts = [f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in errors[:3]]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        loc = errors[0]["loc"] if errors else ()
        raise BadRequest("invalid request: " + "; ".join(parts) + more, param=str(loc[0]) if loc else None) from None


def _not_runnable(**_: Any) -> None:
    raise RuntimeError("the client runs its own tools")  # the server only shows them to the model


def client_tools(request: ChatRequest) -> ToolRegistry:
    """The tools the client sent, as the registry the prompt and the decoder read; none are run here.

    ``tool_choice: "none"`` hides them, and a named tool choice shows only that tool."""
    specs = request.tools or []
    choice = request.tool_choice
    if choice == "none":
        specs = []
    elif isinstance(choice, NamedToolChoice):
        specs = [s for s in specs if s.function.name == choice.function.name]
        if not specs:
            raise BadRequest(f"tool_choice names {choice.function.name!r}, which is not among the tools sent",
                             param="tool_choice")
    registry = ToolRegistry()
    for i, spec in enumerate(specs):
        f = spec.function
        tool = Tool(name=f.name, description=f.description or f.name, parameters=f.parameters, fn=_not_runnable)
        try:
            registry.add(tool)
        except Exception as e:  # noqa: BLE001 - jsonschema's SchemaError or a duplicate name: both the client's to fix
            raise BadRequest(f"tools[{i}] ({f.name}): {str(e).splitlines()[0]}", param="tools") from None
    return registry


def canonical_conversation(request: ChatRequest, tools: ToolRegistry) -> list[dict[str, Any]]:
    """The request's messages as a canonical conversation, led by the system prompt with ``tools``."""
    intro = "\n".join(m.text() for m in request.messages if m.role in ("system", "developer")).strip()
    out: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(tools, intro or None)}]
    called: dict[str, str] = {}  # tool_call_id -> tool name
    for i, m in enumerate(request.messages):
        if m.role in ("system", "developer"):
            continue
        if m.role == "user":
            out.append({"role": "user", "content": m.text()})
        elif m.role == "assistant" and m.tool_calls:
            calls = []
            for call in m.tool_calls:
                calls.append({"name": call.function.name, "arguments": _arguments(call, i)})
                called[call.id] = call.function.name
            out.append({"role": "assistant", "thought": m.reasoning_content or m.text(), "tool_calls": calls})
        elif m.role == "assistant":
            out.append({"role": "assistant", "thought": m.reasoning_content or "", "content": m.text()})
        else:
            name = called.get(m.tool_call_id or "") or m.name
            if name is None:
                raise BadRequest(f"messages.{i}: a tool message's tool_call_id must name an earlier assistant "
                                 f"tool call (got {m.tool_call_id!r})", param="messages")
            out.append({"role": "tool", "name": name, "content": m.text()})
    if out[-1]["role"] not in ("user", "tool"):
        raise BadRequest("the last message must be the user's or a tool result: the reply is the assistant's "
                         "next turn", param="messages")
    return out


def _arguments(call: ToolCall, index: int) -> dict[str, Any]:
    try:
        args = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as e:
        raise BadRequest(f"messages.{index}: tool call {call.id!r} has arguments that are not JSON ({e.msg})",
                         param="messages") from None
    if not isinstance(args, dict):
        raise BadRequest(f"messages.{index}: tool call {call.id!r} has arguments that are not a JSON object",
                         param="messages")
    return args


def reply_message(completion: Completion, tools: ToolRegistry) -> tuple[dict[str, Any], str]:
    """The OpenAI assistant message for one completion, and its finish_reason.

    An Action whose every call names a tool the client sent becomes ``tool_calls``; an Answer becomes
    ``content``; text that does not parse (or calls a tool the client did not send) is returned as it is."""
    try:
        step = parse_step(completion.text)
    except WireFormatError:
        step = None
    if step is not None and step.answer is not None:
        return {"role": "assistant", "content": step.answer, "reasoning_content": step.thought}, "stop"
    if step is not None and all(c["name"] in tools for c in step.tool_calls):
        calls = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}), ensure_ascii=False)}}
                 for c in step.tool_calls]
        return {"role": "assistant", "content": None, "reasoning_content": step.thought, "tool_calls": calls}, \
            "tool_calls"
    finish = "length" if completion.finish_reason == "length" else "stop"
    return {"role": "assistant", "content": completion.text.strip()}, finish


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion_body(cid: str, model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, **extra}


def chunk(cid: str, model: str, delta: dict[str, Any], finish_reason: str | None = None, index: int = 0,
          **extra: Any) -> dict[str, Any]:
    """One streamed ``chat.completion.chunk``; ``extra`` adds fields beside ``choices`` (the agent's steps)."""
    return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}], **extra}


def message_chunks(cid: str, model: str, message: dict[str, Any], finish_reason: str,
                   index: int = 0) -> list[dict[str, Any]]:
    """A whole reply as the chunks a streaming client expects: role, then its parts, then the finish."""
    out = [chunk(cid, model, {"role": "assistant", "content": ""}, index=index)]
    if message.get("reasoning_content"):
        out.append(chunk(cid, model, {"reasoning_content": message["reasoning_content"]}, index=index))
    if message.get("tool_calls"):
        calls = [{"index": k, **call} for k, call in enumerate(message["tool_calls"])]
        out.append(chunk(cid, model, {"tool_calls": calls}, index=index))
    elif message.get("content"):
        out.append(chunk(cid, model, {"content": message["content"]}, index=index))
    out.append(chunk(cid, model, {}, finish_reason, index=index))
    return out


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which its clients turn into a typed exception carrying the message."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
