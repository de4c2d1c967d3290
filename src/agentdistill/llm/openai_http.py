"""Any OpenAI-compatible chat server as a backend: vLLM, Ollama, llama.cpp's server, hosted providers.

Requests go to ``POST {base_url}/chat/completions`` concurrently (an ``asyncio.Semaphore`` bounds
how many are in flight), each with a timeout, and are retried with exponential backoff on 429, 5xx
and connection errors, honouring ``Retry-After``. The first call checks ``GET {base_url}/models``:
an unreachable server or a model name the server does not serve is a UserError that lists the
served models, not a stack trace after the fourth retry.

Canonical messages become chat messages as follows: system and user as they are; an assistant step
becomes its wire text; a tool result becomes a *user* message "Observation: ..." (servers reject
role "tool" without a tool_call_id, and our wire format has none). Consecutive user messages are
joined, since some chat templates insist that roles alternate.

A request's step grammar (``GenerationRequest.grammar``, GBNF) goes in the body's ``grammar`` field where the
server is llama.cpp's (llama-cpp-python's server lists ``grammar`` in its chat request schema at
``/openapi.json``; llama.cpp's own ``llama-server`` answers ``/props``): asked once, at the first request with
a grammar. Other servers are sent none, since an unknown field is an error to some of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from typing import Any
from urllib.parse import urlparse

import httpx

from agentdistill.agent.wire import render_assistant, render_observation
from agentdistill.errors import UserError
from agentdistill.llm.base import BackendError, Completion, GenerationRequest, cut_at_stop

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_STOP = 4  # the OpenAI API accepts at most four stop sequences


def to_openai_messages(messages: list[dict[str, Any]], prefix: str = "") -> list[dict[str, str]]:
    """Canonical messages -> OpenAI chat messages (see the module docstring for the mapping)."""
    out: list[dict[str, str]] = []
    for m in messages:
        if m["role"] in ("system", "user"):
            role, content = m["role"], m["content"]
        elif m["role"] == "assistant":
            role, content = "assistant", render_assistant(m)
        elif m["role"] == "tool":
            role, content = "user", render_observation(m["content"])
        else:
            raise ValueError(f"unknown message role {m['role']!r}")
        if out and out[-1]["role"] == role == "user":
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})
    if prefix:
        out.append({"role": "assistant", "content": prefix})
    return out


def normalize_base_url(url: str) -> str:
    """``http://host:8080`` -> ``http://host:8080/v1``; a URL that already has a path is kept."""
    url = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/models"):
        url = url.removesuffix(suffix)
    return url + "/v1" if urlparse(url).path in ("", "/") else url


def _run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code, also when the caller is itself inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class OpenAIBackend:
    """Chat completions over HTTP with bounded concurrency, timeouts and retries."""

    def __init__(self, base_url: str, model: str | None, api_key: str | None = None, concurrency: int = 4,
                 timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 0.5, prefill: bool = False):
        self.base_url = normalize_base_url(base_url)
        self.model = model
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        # Continuing a partial assistant message is a server feature (vLLM: continue_final_message,
        # Ollama); llama-cpp-python starts a new turn instead, so it is off unless asked for.
        self.prefill = prefill
        self._checked = False
        self._takes_grammar: bool | None = None  # whether the server is llama.cpp's: asked at the first grammar
        self.name = model or self.base_url

    # -- setup ---------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def list_models(self) -> list[str]:
        """The model ids the server serves (``GET /models``). Raises UserError when it cannot be reached."""
        url = f"{self.base_url}/models"
        try:
            resp = httpx.get(url, headers=self._headers(), timeout=min(self.timeout_s, 15.0))
        except httpx.TransportError as e:
            raise UserError(
                f"cannot reach the model server at {self.base_url} ({type(e).__name__}: {e}).",
                hint="Start the server first (e.g. `python -m llama_cpp.server --model MODEL.gguf --port 8080`) "
                "or fix the URL.",
            ) from e
        if resp.status_code in (401, 403):
            raise UserError(f"{url} refused the API key (HTTP {resp.status_code}).",
                            hint="Set the key in the environment variable named by teacher.api_key_env.")
        if resp.status_code != 200:
            return []  # some servers have no /models; the chat request will tell
        try:
            return [m["id"] for m in resp.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            return []

    def check(self) -> None:
        """Fail early, and clearly, if the server is down or does not serve ``self.model``."""
        if self._checked:
            return
        served = self.list_models()
        if self.model is None:
            if len(served) != 1:
                raise UserError(
                    f"{self.base_url} serves {len(served)} models ({', '.join(served) or 'none listed'}); "
                    "say which one to use.",
                    hint="Pass --served-model NAME (or teacher.model in the config).",
                )
            self.model = self.name = served[0]
        elif served and self.model not in served:
            raise UserError(
                f"model {self.model!r} is not served at {self.base_url}. Served models: {', '.join(served)}.",
                hint="Pass one of them with --served-model (or teacher.model in the config).",
            )
        self._checked = True

    # -- generation ----------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        results = self.generate_each(requests)
        for r in results:
            if isinstance(r, BackendError):
                raise r
        return results  # type: ignore[return-value]

    def generate_each(self, requests: list[GenerationRequest]) -> list[list[Completion] | BackendError]:
        """Like ``generate``, but a request that fails gives its BackendError in place of its completions,
        so one bad request does not cost the whole batch (the agent runtime uses this when present)."""
        self.check()
        return _run_sync(self.agenerate(requests))

    async def agenerate(self, requests: list[GenerationRequest]) -> list[list[Completion] | BackendError]:
        """All requests concurrently, at most ``concurrency`` in flight."""
        timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0))
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=self._headers()) as client:
            sem = asyncio.Semaphore(self.concurrency)
            results = await asyncio.gather(*(self._one(client, sem, r) for r in requests), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, BackendError):
                raise r  # a bug or a UserError, not a failed request
        return list(results)  # type: ignore[arg-type]

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore,
                   req: GenerationRequest) -> list[Completion]:
        start_s = time.perf_counter()
        prefix = req.prefix if self.prefill else ""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(req.messages, prefix),
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
        }
        if req.stop:
            payload["stop"] = req.stop[:MAX_STOP]
        if req.logprobs:
            payload["logprobs"] = True
        if prefix:  # vLLM continues the last assistant message with these flags
            payload["continue_final_message"] = True
            payload["add_generation_prompt"] = False
        # the grammar is of the text after the request's prefix: without the prefix sent, it does not fit
        if req.grammar is not None and prefix == req.prefix and await self._accepts_grammar(client):
            payload["grammar"] = req.grammar
        out: list[Completion] = []
        while len(out) < req.n:  # servers that ignore n (Ollama, llama.cpp) return one choice: ask again
            payload["n"] = req.n - len(out)
            choices = await self._post(client, sem, payload)
            if not choices:
                raise BackendError(f"{self.base_url}/chat/completions returned no choices.")
            out.extend(self._completion(c, req.stop, prefix) for c in choices)
        elapsed = time.perf_counter() - start_s
        for completion in out:
            completion.elapsed_s = elapsed
        return out[: req.n]

    @staticmethod
    def _completion(choice: dict[str, Any], stop: list[str], prefix: str) -> Completion:
        text = prefix + ((choice.get("message") or {}).get("content") or "")
        text, cut = cut_at_stop(text, stop)  # stop sequences beyond the API's four are applied here
        logprobs = None
        content = (choice.get("logprobs") or {}).get("content")
        if content:
            logprobs = [float(t["logprob"]) for t in content]
        return Completion(text=text, finish_reason="stop" if cut else (choice.get("finish_reason") or "stop"),
                          logprobs=logprobs)

    async def _accepts_grammar(self, client: httpx.AsyncClient) -> bool:
        """Whether the server takes a GBNF ``grammar`` in a chat request: llama-cpp-python's server (its
        OpenAPI schema names the field) or llama.cpp's ``llama-server`` (it has ``/props``)."""
        if self._takes_grammar is None:
            root = self.base_url.removesuffix("/v1")
            takes = False
            try:
                resp = await client.get(f"{root}/openapi.json")
                if resp.status_code == 200:
                    schemas = resp.json().get("components", {}).get("schemas", {})
                    takes = "grammar" in schemas.get("CreateChatCompletionRequest", {}).get("properties", {})
                if not takes:
                    resp = await client.get(f"{root}/props")
                    takes = resp.status_code == 200 and "default_generation_settings" in resp.json()
            except (httpx.HTTPError, ValueError, AttributeError):
                takes = False
            self._takes_grammar = takes
        return self._takes_grammar

    async def _post(self, client: httpx.AsyncClient, sem: asyncio.Semaphore,
                    payload: dict[str, Any]) -> list[dict[str, Any]]:
        url = f"{self.base_url}/chat/completions"
        problem = ""
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            async with sem:  # the wait between retries happens outside, so others can go meanwhile
                try:
                    resp = await client.post(url, json=payload)
                except httpx.TransportError as e:  # connect errors, timeouts, dropped connections
                    problem = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                else:
                    if resp.status_code == 200:
                        try:
                            return resp.json()["choices"]
                        except (ValueError, KeyError) as e:
                            raise BackendError(f"{url} answered with something that is not a chat completion: "
                                               f"{resp.text[:200]!r}") from e
                    problem = f"HTTP {resp.status_code}: {resp.text[:300]}"
                    if resp.status_code not in RETRY_STATUS:
                        raise BackendError(f"{url} rejected the request ({problem}).")
                    retry_after = _retry_after(resp)
            if attempt < self.max_retries:
                delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
                await asyncio.sleep(min(delay, 60.0) * (1 + 0.1 * random.random()))
        raise BackendError(f"{url} failed after {self.max_retries + 1} attempts (last: {problem}).")


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
