"""`agentdistill serve` as its clients see it: a real server process on a tiny run directory (two of the
example's documents, ingested for real), driven by the official `openai` client and plain HTTP.

Two models serve: the offline rule teacher (``--model rule``), whose steps are known, for the protocol's
round trips, and the bundled untuned SmolLM2 student, a real language model, for batching, limits and
faults (SIGKILL with requests in flight, 50 concurrent requests with bad bodies mixed in).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "uae_labour"
DOCS = ["end-of-service-gratuity.md", "annual-leave.md"]
KEY_ENV = "AGENTDISTILL_TEST_SERVE_KEY"
KEY = "test-key-3f9a"
GRATUITY_QUESTION = "What gratuity is owed after 5 years of service on a basic salary of AED 10,000?"
LEAVE_QUESTION = "How many days of annual leave does a worker get after one year of service?"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentdistill.cli", *args]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory with the example's config and two of its documents ingested (chunks, index)."""
    root = tmp_path_factory.mktemp("serve-run")
    (root / "docs").mkdir()
    for name in DOCS:
        shutil.copy(EXAMPLE / "corpus" / name, root / "docs" / name)
    run = root / "run"
    ingest = _cli("ingest", str(root / "docs"), "--run", str(run), "--config", str(EXAMPLE / "config.yaml"))
    proc = subprocess.run(ingest, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_process(run: Path, *args: str, port: int | None = None) -> Iterator[Server]:
    """``agentdistill serve --run RUN ARGS`` as a real process, once /health answers; stopped on exit."""
    port = port or _free_port()
    log = run.parent / f"serve-{port}-{time.monotonic_ns()}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", KEY_ENV: KEY}
    with log.open("w") as out:
        proc = subprocess.Popen(_cli("serve", "--run", str(run), "--port", str(port), *args), stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{server.output()[-3000:]}"
            try:
                if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve did not start:\n{server.output()[-3000:]}"
            time.sleep(0.5)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def client(server: Server, key: str = KEY, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, **kwargs)


@pytest.fixture(scope="module")
def rule_server(tiny_run) -> Iterator[Server]:
    with serve_process(tiny_run, "--model", "rule") as server:
        yield server


@pytest.fixture(scope="module")
def student_server(tiny_run) -> Iterator[Server]:
    """The run's default model (no adapter yet: the untuned student), behind an API key and a small max_tokens."""
    # a generous time limit: on a shared 2-core machine one 12-token turn took 39 s
    with serve_process(tiny_run, "--api-key-env", KEY_ENV, "--max-tokens", "64", "--batch-size", "8",
                       "--max-body-bytes", "100000", "--timeout", "900") as server:
        yield server


def _run_tools(run: Path):
    from agentdistill.config import load_run_config
    from agentdistill.tools import load_tools

    return load_tools(load_run_config(run), run)


def _openai_tool(run: Path, name: str) -> dict:
    spec = _run_tools(run).get(name).spec()
    return {"type": "function", "function": spec}


def test_serve_refuses_a_missing_run_and_an_unset_api_key_variable(tmp_path):
    missing = subprocess.run(_cli("serve", "--run", str(tmp_path / "nope")), capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    unset = subprocess.run(_cli("serve", "--run", str(tmp_path), "--api-key-env", KEY_ENV), capture_output=True,
                           text=True, timeout=300, env=env)
    assert unset.returncode == 2 and f"--api-key-env {KEY_ENV}" in unset.stderr, unset.stderr
    assert "Traceback" not in missing.stderr + unset.stderr


# --- tool calling: the client's tools, the client runs them ---------------------------------------------

def test_tool_calling_round_trip_with_the_clients_own_tool(rule_server, tiny_run):
    c = client(rule_server)
    tools = [_openai_tool(tiny_run, "calculate_gratuity")]
    messages = [{"role": "user", "content": GRATUITY_QUESTION}]
    first = c.chat.completions.create(model="rule", messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "calculate_gratuity"
    assert json.loads(call.function.arguments) == {"monthly_basic_salary": 10000, "length_of_service": 5,
                                                  "service_unit": "years"}
    assert choice.message.model_extra["reasoning_content"]  # the thought travels beside the call

    # the client runs its tool and sends the result back as a role "tool" message
    result = _run_tools(tiny_run).call("calculate_gratuity", json.loads(call.function.arguments)).content
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": result}]
    second = c.chat.completions.create(model="rule", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert "35,000" in second.choices[0].message.content


def test_tool_calling_streams_the_call_in_openai_chunks(rule_server, tiny_run):
    stream = client(rule_server).chat.completions.create(
        model="rule", messages=[{"role": "user", "content": GRATUITY_QUESTION}],
        tools=[_openai_tool(tiny_run, "calculate_gratuity")], stream=True)
    chunks = list(stream)
    calls = [tc for ch in chunks for tc in (ch.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["calculate_gratuity"]
    assert json.loads(calls[0].function.arguments)["length_of_service"] == 5
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_tool_the_client_did_not_send_is_never_called(rule_server, tiny_run):
    # the rule teacher plans calculate_gratuity for this question; the client offers only get_article
    reply = client(rule_server).chat.completions.create(
        model="rule", messages=[{"role": "user", "content": GRATUITY_QUESTION}],
        tools=[_openai_tool(tiny_run, "get_article")])
    message = reply.choices[0].message
    assert not message.tool_calls or all(tc.function.name == "get_article" for tc in message.tool_calls)


def test_the_prompt_lists_only_the_clients_tools_and_tool_results_are_observations():
    from agentdistill.serve.openai_api import canonical_conversation, client_tools, parse_request

    weather = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                                "parameters": {"type": "object", "properties": {
                                                    "city": {"type": "string"}}, "required": ["city"]}}}
    body = {"model": "m", "tools": [weather], "messages": [
        {"role": "system", "content": "You answer travellers."},
        {"role": "user", "content": "Weather in Dubai?"},
        {"role": "assistant", "content": None, "reasoning_content": "I will look it up.",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather",
                                                                      "arguments": "{\"city\": \"Dubai\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "31 C, sunny"}]}
    request = parse_request(json.dumps(body).encode())
    conversation = canonical_conversation(request, client_tools(request))
    system = conversation[0]["content"]
    assert system.startswith("You answer travellers.") and "get_weather(city: str)" in system
    assert "search_labour_law" not in system and "calculate_gratuity" not in system
    assert conversation[2] == {"role": "assistant", "thought": "I will look it up.",
                               "tool_calls": [{"name": "get_weather", "arguments": {"city": "Dubai"}}]}
    assert conversation[3] == {"role": "tool", "name": "get_weather", "content": "31 C, sunny"}


# --- agent mode: the server runs the loop with the run's tools ------------------------------------------

def test_agent_mode_answers_with_its_steps(rule_server):
    reply = client(rule_server).chat.completions.create(
        model="rule-agent", messages=[{"role": "user", "content": GRATUITY_QUESTION}])
    assert "35,000" in reply.choices[0].message.content
    agent = reply.model_extra["agent"]
    assert agent["status"] == "answered"
    assert [s["type"] for s in agent["steps"]] == ["action", "observation", "answer"]
    assert agent["steps"][0]["tool_calls"][0]["name"] == "calculate_gratuity"
    assert "35,000" in agent["steps"][1]["content"]


def test_agent_mode_streams_each_step_then_the_answer_with_linked_citations(rule_server):
    stream = client(rule_server).chat.completions.create(
        model="rule-agent", messages=[{"role": "user", "content": LEAVE_QUESTION}], stream=True)
    chunks = list(stream)  # the client stops at data: [DONE]
    steps = [ch.model_extra["agent_step"] for ch in chunks if "agent_step" in (ch.model_extra or {})]
    assert [s["type"] for s in steps] == ["action", "observation", "answer"]
    assert steps[0]["tool_calls"][0]["name"] == "search_labour_law"
    assert steps[1]["passages"] and all(p["text"] for p in steps[1]["passages"])
    contents = [ch.choices[0].delta.content for ch in chunks if ch.choices[0].delta.content]
    assert contents == [steps[2]["answer"]]  # the answer is the stream's one content, after the steps
    assert "30" in contents[0]
    assert chunks[-1].choices[0].finish_reason == "stop"
    agent = chunks[-1].model_extra["agent"]
    assert agent["status"] == "answered"
    cited = {c["citation"]: c["passage"] for c in agent["citations"]}
    assert "FDL 33/2021 Art. 29" in cited
    shown = cited["FDL 33/2021 Art. 29"]  # linked to a passage the observation showed, which carries it
    passage = next(p for p in steps[1]["passages"] if p["n"] == shown["n"])
    assert shown["step"] == steps[1]["index"] and "Art. 29" in passage["citation"]


# --- the untuned student: a real model behind the API key and the limits --------------------------------

def test_models_health_and_the_api_key(student_server):
    ids = {m.id for m in client(student_server).models.list().data}
    assert ids == {"smollm2-135m", "smollm2-135m-agent"}
    health = httpx.get(student_server.url + "/health").json()  # open, so a load balancer can probe it
    assert health["api_key_required"] is True and "search_labour_law" in health["tools"]
    with pytest.raises(openai.AuthenticationError, match="API key"):
        client(student_server, key="wrong").models.list()
    no_key = httpx.post(student_server.url + "/v1/chat/completions", json={"model": "smollm2-135m", "messages": []})
    assert no_key.status_code == 401 and "Bearer" in no_key.json()["error"]["message"]


def _post(server: Server, body: bytes | str | dict, key: str = KEY) -> httpx.Response:
    content = json.dumps(body) if isinstance(body, dict) else body
    return httpx.post(server.url + "/v1/chat/completions", content=content, timeout=300,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})


HELLO = [{"role": "user", "content": "Hello"}]
BAD_REQUESTS = [  # (body, status, what the message says)
    ({"model": "smollm2-135m"}, 400, "messages: Field required"),
    ({"model": "smollm2-135m", "messages": "hello"}, 400, "messages: Input should be a valid array"),
    ({"model": "smollm2-135m", "messages": []}, 400, "messages: List should have at least 1 item"),
    ({"model": "smollm2-135m", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
    ({"model": "smollm2-135m", "messages": [{"role": "user", "content": 42}]}, 400, "messages.0.content"),
    ({"model": "smollm2-135m", "messages": HELLO, "temperature": "hot"}, 400, "temperature"),
    ({"model": "smollm2-135m", "messages": HELLO, "max_tokens": 5000}, 400, "at most 64"),
    ({"model": "smollm2-135m", "messages": HELLO, "stream": "yes"}, 400, "stream"),
    ({"model": "gpt-4", "messages": HELLO}, 404, "'smollm2-135m-agent'"),
    ({"model": "smollm2-135m", "messages": [*HELLO, {"role": "assistant", "content": "Hi"}]}, 400, "last message"),
    ({"model": "smollm2-135m", "messages": [*HELLO, {"role": "tool", "tool_call_id": "x", "content": "1"}]}, 400,
     "tool_call_id"),
    ({"model": "smollm2-135m", "messages": HELLO, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "not-a-type"}}}]}, 400, "tools[0] (f)"),
    ({"model": "smollm2-135m", "messages": HELLO, "tools": [{"type": "function", "function": {"name": "bad name!"}}]},
     400, "tools.0.function.name"),
    ({"model": "smollm2-135m-agent", "messages": [{"role": "system", "content": "only a system message"}]}, 400,
     "last user message"),
    ("{not json", 400, "not valid JSON"),
    (json.dumps({"model": "smollm2-135m", "messages": [{"role": "user", "content": "x" * 200_000}]}), 413,
     "at most 100000"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_REQUESTS, ids=[f"{i}-{s}" for i, (_, s, _) in
                                                                        enumerate(BAD_REQUESTS)])
def test_a_bad_request_gets_a_4xx_that_says_what_is_wrong(student_server, body, status, says):
    response = _post(student_server, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert says in error["message"], error
    assert "Traceback" not in response.text


def test_the_openai_client_raises_the_servers_message(student_server):
    with pytest.raises(openai.BadRequestError, match="at most 64 per model turn"):
        client(student_server).chat.completions.create(model="smollm2-135m", messages=HELLO, max_tokens=500)


def test_concurrent_requests_are_answered_and_batched(student_server):
    c = client(student_server, timeout=900)
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            model = "smollm2-135m-agent" if i % 2 else "smollm2-135m"
            reply = c.chat.completions.create(model=model, max_tokens=8,
                                              messages=[{"role": "user", "content": f"What is {i} plus {i}?"}])
            results[i] = reply
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results[i] = e

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert len(results) == 8
    for i, reply in results.items():
        assert reply.model == ("smollm2-135m-agent" if i % 2 else "smollm2-135m")
        assert reply.choices[0].message.content or reply.choices[0].message.tool_calls
        if i % 2:
            assert reply.model_extra["agent"]["status"] in {"answered", "parse_error", "max_steps", "loop"}
    assert httpx.get(student_server.url + "/health").json()["largest_batch"] > 1


def test_fifty_concurrent_requests_with_bad_bodies_mixed_in_get_no_500(student_server):
    bodies: list[bytes | str | dict] = []
    for i in range(50):
        if i % 2:
            bodies.append(BAD_REQUESTS[i % len(BAD_REQUESTS)][0])
        else:
            bodies.append({"model": "smollm2-135m", "messages": HELLO, "max_tokens": 2})
    statuses: dict[int, int] = {}

    def send(i: int) -> None:
        try:
            statuses[i] = _post(student_server, bodies[i]).status_code
        except httpx.HTTPError as e:
            statuses[i] = -1
            print(i, e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert len(statuses) == 50
    assert all(statuses[i] == 200 for i in range(0, 50, 2)), statuses
    assert all(400 <= statuses[i] < 500 for i in range(1, 50, 2)), statuses
    assert student_server.proc.poll() is None
    assert httpx.get(student_server.url + "/health").json()["status"] == "ok"


def test_a_client_that_leaves_mid_stream_frees_its_slot(student_server):
    stream = client(student_server, timeout=900).chat.completions.create(
        model="smollm2-135m-agent", max_tokens=64, stream=True, messages=[{"role": "user", "content": LEAVE_QUESTION}])
    first = next(iter(stream))  # the stream has begun: the conversation is running
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    deadline = time.monotonic() + 600
    while httpx.get(student_server.url + "/health").json()["in_flight"] > 0:
        assert time.monotonic() < deadline, "the abandoned conversation kept its slot"
        time.sleep(0.5)
    reply = client(student_server).chat.completions.create(model="smollm2-135m", max_tokens=2, messages=HELLO)
    assert reply.choices[0].finish_reason in {"stop", "length", "tool_calls"}


# --- faults: a killed server, a request over the time limit ---------------------------------------------

def test_sigkill_with_requests_in_flight_fails_them_cleanly_and_a_restart_serves(tiny_run):
    port = _free_port()
    errors: list[BaseException] = []
    with serve_process(tiny_run, port=port) as server:
        c = client(server, timeout=600)

        def ask() -> None:
            try:
                c.chat.completions.create(model="smollm2-135m-agent", max_tokens=64,
                                          messages=[{"role": "user", "content": LEAVE_QUESTION}])
            except BaseException as e:  # noqa: BLE001 - what the client saw is the point of the test
                errors.append(e)

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while httpx.get(server.url + "/health").json()["in_flight"] < 4:
            assert time.monotonic() < deadline, "the requests never reached the server"
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
        for t in threads:
            t.join(60)
    assert len(errors) == 4 and all(isinstance(e, openai.APIConnectionError) for e in errors), errors

    with serve_process(tiny_run, port=port) as again:  # the same port: nothing of the dead server is in the way
        reply = client(again).chat.completions.create(model="smollm2-135m", max_tokens=4, messages=HELLO)
        assert reply.choices[0].finish_reason in {"stop", "length", "tool_calls"}


def test_a_request_over_the_time_limit_gets_a_504_and_the_server_goes_on(tiny_run):
    with serve_process(tiny_run, "--timeout", "2") as server:
        c = client(server, timeout=120)
        outcomes: list[object] = []

        def ask() -> None:
            try:
                outcomes.append(c.chat.completions.create(model="smollm2-135m-agent", max_tokens=64,
                                                          messages=[{"role": "user", "content": LEAVE_QUESTION}]))
            except openai.APIStatusError as e:
                outcomes.append(e)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        late = [o for o in outcomes if isinstance(o, openai.APIStatusError)]
        assert len(outcomes) == 8 and late, outcomes  # 8 conversations of 64-token turns take more than 2 s
        assert all(e.status_code == 504 and "time limit" in e.message for e in late), late
        assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_a_cited_section_links_to_the_passage_that_showed_it_and_an_unseen_one_to_none():
    from agentdistill.domains.uae_labour.citations import STYLE as LAW_CITATIONS
    from agentdistill.serve.steps import answer_citations, passages

    shown = "[1] Staff handbook > Annual leave: Staff get 30 days.\n[2] Staff handbook > Expenses: Receipts in a week."
    steps = [{"index": 1, "type": "observation", "passages": passages(shown)}]
    cited = answer_citations("30 days (Staff handbook > Annual leave); see [Staff handbook > Pensions].", steps)
    assert cited == [{"citation": "Staff handbook > Annual leave", "passage": {"step": 1, "n": 1}},
                     {"citation": "Staff handbook > Pensions", "passage": None}]
    # a pack's style reads its own citations: the law's articles, in a passage's head or text
    law = "[1] Leave > Annual leave (Federal Decree-Law 33/2021, Art. 29): 30 days a year."
    steps = [{"index": 2, "type": "observation", "passages": passages(law, LAW_CITATIONS)}]
    assert steps[0]["passages"][0]["cites"] == ["Federal Decree-Law 33/2021, Art. 29"]
    assert answer_citations("30 days (Federal Decree-Law 33/2021, Art. 29)", steps, LAW_CITATIONS) == [
        {"citation": "FDL 33/2021 Art. 29", "passage": {"step": 2, "n": 1}}]
