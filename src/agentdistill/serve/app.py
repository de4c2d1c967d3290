"""The HTTP app: OpenAI-compatible chat completions in two modes, the model list, health and the chat page.

``POST /v1/chat/completions`` with ``model``:

- ``<name>``: tool calling. The client sends its tools (OpenAI schema); the model sees only those, in
  the system prompt agent/prompt.py writes, and its step comes back as ``tool_calls`` or ``content``
  (openai_api.py). The client runs the tools and sends their results as ``role: tool`` messages.
- ``<name>-agent``: the server runs the ReAct loop (agent/runtime.py) on the last user message with
  the run's own tools and returns the answer with every step (``agent.steps``); with ``stream: true``
  each step is one server-sent chunk as it happens (its wire text in ``delta.reasoning_content``, the
  step itself in ``agent_step``), the answer is the last ``delta.content``, then ``data: [DONE]``.

Every model call goes through one Batcher (batcher.py). Limits: the body's size, ``max_tokens``, the
time a request may take and the requests in flight. A request the client can fix gets a 4xx whose
body is OpenAI's error shape with a message that says what to change; an unexpected failure is a 500
that names the error's type, never a traceback (the server's log has it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentdistill.agent.runtime import AgentResult, run_agents
from agentdistill.agent.wire import STOP_SEQUENCES
from agentdistill.citations import GENERIC, CitationStyle
from agentdistill.llm.base import BackendError, GenerationRequest
from agentdistill.llm.grammar import step_grammar
from agentdistill.serve.batcher import Batcher, RequestLLM, RequestTimeout
from agentdistill.serve.openai_api import (
    BadRequest,
    ChatRequest,
    canonical_conversation,
    chunk,
    client_tools,
    completion_body,
    completion_id,
    error_body,
    message_chunks,
    parse_request,
    reply_message,
)
from agentdistill.serve.steps import answer_citations, step_of, step_text
from agentdistill.tools.registry import ToolRegistry

log = logging.getLogger("agentdistill.serve")
AGENT_SUFFIX = "-agent"
CHAT_PAGE = Path(__file__).parent / "static" / "chat.html"


@dataclass
class Limits:
    max_body_bytes: int = 1_000_000  # a request body larger than this is refused (413)
    max_tokens: int = 1024  # the most tokens a request may ask for per model turn
    default_max_tokens: int = 256  # per model turn, when the request does not say
    timeout_s: float = 120.0  # a request still unanswered after this gets a 504
    max_in_flight: int = 64  # requests served at once; more get a 429


@dataclass
class Served:
    """What the app serves: one model (behind its batcher) and, for agent mode, the run's tools."""

    name: str
    batcher: Batcher
    tools: ToolRegistry
    agent_options: dict[str, Any]  # run_agents keyword arguments (agent.runtime.agent_options of the run)
    # tool-calling mode decodes each step under the grammar of the client's tools (llm.grammar): tool names,
    # and with constrain_arguments argument names and types, only as the client's schemas allow
    constrain: bool = True
    constrain_arguments: bool = True
    citations: CitationStyle = GENERIC  # how the run's documents are cited (domains.citation_style)


def create_app(served: Served, limits: Limits | None = None, api_key: str | None = None) -> FastAPI:
    limits = limits or Limits()
    agents = ThreadPoolExecutor(max_workers=limits.max_in_flight, thread_name_prefix="agentdistill-agent")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        served.batcher.close()
        agents.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="agentdistill", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    in_flight = [0]  # touched only on the event loop's thread

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, e: BadRequest) -> JSONResponse:
        kind = "invalid_request_error" if e.status < 500 else "server_error"
        return JSONResponse(error_body(e.message, kind, e.param, e.code), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(e.detail)), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(error_body(f"internal error ({type(e).__name__}); the server's log has the details",
                                       "server_error"), status_code=500)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            raise BadRequest("missing or wrong API key: send 'Authorization: Bearer <key>'", status=401,
                             code="invalid_api_key")

    @app.get("/", response_class=HTMLResponse)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(CHAT_PAGE.read_text(encoding="utf-8"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, "agent_model": served.name + AGENT_SUFFIX,
                "tools": served.tools.names(), "api_key_required": api_key is not None,
                "in_flight": in_flight[0], "batches": served.batcher.batches,
                "largest_batch": served.batcher.largest_batch}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        created = int(time.time())
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                            "owned_by": "agentdistill"}
                                           for name in (served.name, served.name + AGENT_SUFFIX)]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        authorize(request)
        if in_flight[0] >= limits.max_in_flight:
            raise BadRequest(f"the server is serving {limits.max_in_flight} requests (--max-in-flight); retry shortly",
                             status=429, code="too_many_requests")
        in_flight[0] += 1
        release = _Once(lambda: in_flight.__setitem__(0, in_flight[0] - 1))
        try:
            req = parse_request(await _read_body(request, limits.max_body_bytes))
            max_tokens = _max_tokens(req, limits)
            if req.model == served.name:
                response = await _tool_calling(req, max_tokens)
            elif req.model == served.name + AGENT_SUFFIX:
                response = await _agent(req, max_tokens, release)
            else:
                raise BadRequest(f"model {req.model!r} is not served here; use {served.name!r} (tool calling) or "
                                 f"{served.name + AGENT_SUFFIX!r} (the agent with the run's tools)", status=404,
                                 param="model", code="model_not_found")
        except BaseException:
            release()
            raise
        if req.model != served.name + AGENT_SUFFIX:
            release()  # an agent's slot is released by its conversation's thread when it ends (_agent)
        return response

    async def _tool_calling(req: ChatRequest, max_tokens: int) -> Response:
        tools = client_tools(req)
        conversation = canonical_conversation(req, tools)
        grammar = _grammar(tools, served.constrain_arguments) if served.constrain else None
        generation = GenerationRequest(messages=conversation, stop=[*STOP_SEQUENCES, *req.stop_list()],
                                       max_tokens=max_tokens, temperature=req.temperature or 0.0, n=req.n,
                                       grammar=grammar)
        cancelled = threading.Event()
        job = served.batcher.submit([generation], time.monotonic() + limits.timeout_s, cancelled)[0]
        try:
            completions = await asyncio.wait_for(asyncio.wrap_future(job.future), limits.timeout_s)
        except (TimeoutError, RequestTimeout):
            cancelled.set()
            raise _timeout(limits) from None
        except BackendError as e:
            raise BadRequest(f"the model backend failed: {e}", status=502, code="backend_error") from None
        finally:
            cancelled.set()  # a job not yet started is dropped if the client has gone
        cid = completion_id()
        replies = [reply_message(c, tools) for c in completions]
        if req.stream:
            chunks = [c for i, (msg, finish) in enumerate(replies)
                      for c in message_chunks(cid, served.name, msg, finish, i)]
            return StreamingResponse(_sse_all(chunks), media_type="text/event-stream")
        choices = [{"index": i, "message": msg, "finish_reason": finish} for i, (msg, finish) in enumerate(replies)]
        return JSONResponse(completion_body(cid, served.name, choices))

    async def _agent(req: ChatRequest, max_tokens: int, release: _Once) -> Response:
        question = next((m.text() for m in reversed(req.messages) if m.role == "user"), "").strip()
        if not question:
            raise BadRequest("agent mode answers the last user message, and there is none with text",
                             param="messages")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        llm = RequestLLM(served.batcher, time.monotonic() + limits.timeout_s)
        options = {**served.agent_options, "max_tokens": max_tokens}
        if req.temperature is not None:
            options["temperature"] = req.temperature

        def tell(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, (kind, value))
            except RuntimeError:  # the server is shutting down
                llm.cancelled.set()

        def run() -> None:
            steps = [0]

            def on_event(event: Any) -> None:
                step = step_of(event, steps[0], served.citations)
                if step is not None:
                    steps[0] += 1
                    tell("step", step)

            try:
                _, result = next(run_agents(llm, served.tools, [question], on_event=on_event, **options))
                tell("end", result)
            except Exception as e:  # noqa: BLE001 - reported to the client as a 500 that names it
                log.exception("agent run failed")
                tell("fail", e)
            finally:
                # the slot is held until the conversation really ends, even when its client went away before
                # a stream began (a stream's own cleanup never runs then)
                with contextlib.suppress(RuntimeError):  # the server is shutting down
                    loop.call_soon_threadsafe(release)

        agents.submit(run)
        cid = completion_id()
        model = served.name + AGENT_SUFFIX
        if req.stream:
            return StreamingResponse(_agent_stream(cid, model, events, llm), media_type="text/event-stream")
        steps: list[dict[str, Any]] = []
        try:
            while True:
                kind, value = await events.get()
                if kind == "step":
                    steps.append(value)
                elif kind == "fail":
                    raise value
                else:
                    break
        except asyncio.CancelledError:
            llm.cancelled.set()  # the client went away: the conversation stops at its next model call
            raise
        result: AgentResult = value
        _raise_backend_error(result, llm)
        message = {"role": "assistant", "content": _answer_text(result),
                   "reasoning_content": "".join(step_text(s) for s in steps)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return JSONResponse(completion_body(cid, model, [choice], agent=_summary(result, steps, served.citations)))

    async def _agent_stream(cid: str, model: str, events: asyncio.Queue[tuple[str, Any]],
                            llm: RequestLLM) -> AsyncIterator[str]:
        steps: list[dict[str, Any]] = []
        try:
            yield _sse(chunk(cid, model, {"role": "assistant", "content": ""}))
            while True:
                kind, value = await events.get()
                if kind == "step":
                    steps.append(value)
                    delta = {"content": value["answer"]} if value["type"] == "answer" else {
                        "reasoning_content": step_text(value)}
                    yield _sse(chunk(cid, model, delta, agent_step=value))
                    continue
                if kind == "fail":
                    yield _sse(error_body(f"internal error ({type(value).__name__})", "server_error"))
                    return
                break
            result: AgentResult = value
            try:
                _raise_backend_error(result, llm)
            except BadRequest as e:
                yield _sse(error_body(e.message, "server_error", code=e.code))
                return
            if result.outcome.answer is None:
                yield _sse(chunk(cid, model, {"content": _answer_text(result)}))
            yield _sse(chunk(cid, model, {}, "stop", agent=_summary(result, steps, served.citations, with_steps=False)))
            yield "data: [DONE]\n\n"
        finally:
            llm.cancelled.set()  # a client that went away stops the conversation at its next model call

    return app


class _Once:
    """A callable that runs ``fn`` the first time only (a request's in-flight slot is released once)."""

    def __init__(self, fn: Any):
        self.fn = fn
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            self.fn()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the request body is {int(declared)} bytes; this server takes at most {limit} "
                         "(--max-body-bytes)", status=413, code="request_too_large")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BadRequest(f"the request body is over {limit} bytes, the most this server takes (--max-body-bytes)",
                             status=413, code="request_too_large")
        parts.append(part)
    return b"".join(parts)


def _max_tokens(req: ChatRequest, limits: Limits) -> int:
    asked = req.max_completion_tokens or req.max_tokens
    if asked is not None and asked > limits.max_tokens:
        field = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise BadRequest(f"{field} is {asked}; this server allows at most {limits.max_tokens} per model turn "
                         "(--max-tokens)", param=field)
    return asked or min(limits.default_max_tokens, limits.max_tokens)


def _grammar(tools: ToolRegistry, arguments: bool = True) -> str | None:
    """The step grammar of the client's tools (llm.grammar), or None (decoded free) for a schema it cannot write."""
    try:
        return step_grammar(tools, arguments=arguments)
    except (ValueError, KeyError, TypeError) as e:
        log.info("tools decoded without a grammar: %s", e)
        return None


def _timeout(limits: Limits) -> BadRequest:
    return BadRequest(f"the request took longer than this server's limit of {limits.timeout_s:g} s (--timeout); "
                      "ask for fewer max_tokens or retry when it is less busy", status=504, code="timeout")


def _raise_backend_error(result: AgentResult, llm: RequestLLM) -> None:
    if result.outcome.status != "backend_error":
        return
    if llm.timed_out:
        raise BadRequest("the agent did not finish within this server's time limit (--timeout)", status=504,
                         code="timeout")
    raise BadRequest(f"the model backend failed: {result.error}", status=502, code="backend_error")


def _answer_text(result: AgentResult) -> str:
    if result.outcome.answer is not None:
        return result.outcome.answer
    return f"The agent stopped without an answer (status: {result.outcome.status})."


def _summary(result: AgentResult, steps: list[dict[str, Any]], style: CitationStyle,
             with_steps: bool = True) -> dict[str, Any]:
    """The agent's part of a reply: its status, steps (a stream has sent them already) and citations."""
    answer = result.outcome.answer or ""
    return {"status": result.outcome.status, **({"steps": steps} if with_steps else {}),
            "citations": answer_citations(answer, steps, style), "latency_s": round(result.latency_s, 3)}


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _sse_all(chunks: list[dict[str, Any]]) -> AsyncIterator[str]:
    for c in chunks:
        yield _sse(c)
    yield "data: [DONE]\n\n"
