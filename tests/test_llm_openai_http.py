"""The OpenAI-compatible backend's error paths, against a fault-injecting server (tests/fault_server.py):
retries with backoff on 429/5xx, timeouts, per-request failures, and clear errors for a dead server or
a wrong model name. The happy path against a real server is in test_llm_llamacpp.py."""

from __future__ import annotations

import json
import socket
import time

import pytest
from fault_server import MODEL, fault_server

from agentdistill.agent.runtime import run_agent
from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.llm import make_llm
from agentdistill.llm.base import BackendError, GenerationRequest
from agentdistill.llm.openai_http import OpenAIBackend, normalize_base_url, to_openai_messages
from agentdistill.tools import load_tools

ANSWER = "text:Thought: easy.\nAnswer: 42"


def ask(n: int = 1, **kw) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": "what is six times seven?"}], n=n, **kw)


def backend(url: str, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_s", 0.01)
    return OpenAIBackend(url, MODEL, **kw)


def test_retries_429_and_5xx_then_succeeds():
    with fault_server([500, 429, 503, ANSWER]) as server:
        out = backend(server.url, max_retries=4).generate([ask()])
        assert out[0][0].text == "Thought: easy.\nAnswer: 42"
        assert server.chat_requests() == 4
        assert out[0][0].elapsed_s >= 0.01 + 0.04  # its time includes the back-off (500, 503; the 429 said 0 s)


def test_gives_up_after_max_retries_with_the_last_error():
    with fault_server([502]) as server:
        with pytest.raises(BackendError, match=r"failed after 3 attempts.*HTTP 502"):
            backend(server.url, max_retries=2).generate([ask()])
        assert server.chat_requests() == 3


def test_a_client_error_is_not_retried():
    with fault_server([400]) as server:
        with pytest.raises(BackendError, match="rejected the request.*HTTP 400"):
            backend(server.url, max_retries=4).generate([ask()])
        assert server.chat_requests() == 1


def test_a_hanging_server_times_out():
    with fault_server(["hang"]) as server:
        start = time.perf_counter()
        with pytest.raises(BackendError, match="Timeout"):
            backend(server.url, timeout_s=0.3, max_retries=1).generate([ask()])
        assert time.perf_counter() - start < 5
        assert server.chat_requests() == 2


def test_a_reply_that_is_not_a_completion_is_a_backend_error():
    with fault_server(["bad-json"]) as server, pytest.raises(BackendError, match="not a chat completion"):
        backend(server.url).generate([ask()])


def test_one_failed_request_fails_alone():
    with fault_server(["text:Answer: a", 400, "text:Answer: c"]) as server:
        results = backend(server.url, concurrency=1).generate_each([ask(), ask(), ask()])
        assert results[0][0].text == "Answer: a"
        assert isinstance(results[1], BackendError)
        assert results[2][0].text == "Answer: c"


def test_n_is_emulated_on_servers_that_return_one_choice():
    with fault_server([ANSWER]) as server:
        out = backend(server.url).generate([ask(n=3, temperature=0.7)])
        assert len(out[0]) == 3
        assert [r["n"] for r in server.requests] == [3, 2, 1]


def test_unreachable_server_is_a_clear_user_error():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=f"cannot reach the model server at http://127.0.0.1:{port}/v1") as e:
        make_llm(f"http://127.0.0.1:{port}", None, RunConfig(), served_model="x")
    assert "llama_cpp.server" in e.value.hint


def test_wrong_model_name_lists_the_served_models():
    with fault_server([ANSWER], models=["qwen2.5-7b", "smollm2"]) as server:
        with pytest.raises(UserError, match="'gpt-5' is not served.*qwen2.5-7b, smollm2"):
            make_llm(server.url, None, RunConfig(), served_model="gpt-5")
        with pytest.raises(UserError, match="serves 2 models"):
            make_llm(server.url, None, RunConfig())


def test_the_only_served_model_is_used_when_none_is_named():
    with fault_server([ANSWER]) as server:
        llm = make_llm(server.url.removesuffix("/v1"), None, RunConfig())
        assert llm.name == MODEL
        llm.generate([ask()])
        assert server.requests[0]["model"] == MODEL


def test_canonical_messages_become_chat_messages_servers_accept():
    call = {"name": "calculator", "arguments": {"expression": "1+1"}}
    messages = [
        {"role": "system", "content": "tools..."},
        {"role": "user", "content": "q"},
        {"role": "assistant", "thought": "look it up", "tool_calls": [call]},
        {"role": "tool", "name": "calculator", "content": "1+1 = 2"},
        {"role": "tool", "name": "calculator", "content": "again"},
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "tools..."},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": 'Thought: look it up\nAction: ' + json.dumps(call)},
        {"role": "user", "content": "Observation: 1+1 = 2\n\nObservation: again"},  # roles must alternate
    ]
    assert normalize_base_url("http://h:8080/") == "http://h:8080/v1"
    assert normalize_base_url("https://api.example.com/openai/v1/chat/completions") == "https://api.example.com/openai/v1"


def test_stop_sequences_are_capped_for_the_api_and_applied_client_side():
    with fault_server(["text:Thought: x\nAction: {}\nObservation: made up\nmore"]) as server:
        out = backend(server.url).generate([ask(stop=["a1", "a2", "a3", "a4", "\nObservation:"])])
        assert server.requests[0]["stop"] == ["a1", "a2", "a3", "a4"]
        assert out[0][0].text == "Thought: x\nAction: {}"  # the fifth stop sequence cut it here
        assert out[0][0].finish_reason == "stop"


def test_agent_over_http_answers_or_ends_with_backend_error():
    tools = load_tools(RunConfig(), None)
    with fault_server([ANSWER]) as server:
        result = run_agent(backend(server.url), tools, "what is six times seven?")
        assert result.outcome.status == "answered" and result.outcome.answer == "42"
    with fault_server([503]) as server:
        result = run_agent(backend(server.url, max_retries=1), tools, "what is six times seven?")
        assert result.outcome.status == "backend_error" and "HTTP 503" in result.error
