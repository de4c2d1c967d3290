"""The HTTP backend and the agent loop against a REAL llama.cpp server running the bundled SmolLM2 GGUF.

Token counts are tiny: the point is that the real server, the real client and the real loop work
together, not what an untuned 135M model says.
"""

from __future__ import annotations

import pytest

from agentdistill.agent.runtime import run_agents
from agentdistill.config import RunConfig
from agentdistill.llm import make_llm
from agentdistill.llm.base import GenerationRequest
from agentdistill.records import Trace
from agentdistill.tools import load_tools

pytestmark = pytest.mark.llamacpp

STATUSES = {"answered", "max_steps", "loop", "parse_error", "backend_error"}


def test_generates_n_samples_with_stop_sequences(llamacpp_server):
    llm = make_llm(llamacpp_server.url, None, RunConfig(), served_model=llamacpp_server.model)
    req = GenerationRequest(messages=[{"role": "user", "content": "Count from one to twenty: one, two,"}],
                            stop=["seven"], max_tokens=16, temperature=0.8, n=2)
    (completions,) = llm.generate([req])
    assert len(completions) == 2
    for c in completions:
        assert c.text.strip()  # the model really generated something
        assert "seven" not in c.text  # stop sequence honoured (by the server or cut here)
        assert c.finish_reason in ("stop", "length")


def test_agent_loop_runs_through_the_real_server(llamacpp_server):
    cfg = RunConfig()
    tools = load_tools(cfg, None)
    llm = make_llm(llamacpp_server.url, None, cfg, served_model=llamacpp_server.model)
    questions = ["What is 17 * 23? Use the calculator.", "Convert 5 miles to km."]
    results = dict(run_agents(llm, tools, questions, max_steps=2, max_tokens=40))
    assert sorted(results) == [0, 1]
    assert any(text.strip() for r in results.values() for text in r.raw_steps)  # the model really answered
    for i, r in results.items():
        assert r.outcome.status in STATUSES - {"backend_error"}, r.error
        assert 1 <= r.outcome.steps <= 2
        assert len(r.raw_steps) == r.outcome.steps
        assert r.messages[1] == {"role": "user", "content": questions[i]}
        # whatever the untuned model did, the conversation is a valid canonical trace
        Trace(id=str(i), question_id=str(i), tools=tools.specs(), messages=r.messages, teacher=llm.name,
              outcome=r.outcome)
        if r.outcome.status == "answered":
            assert r.messages[-1]["role"] == "assistant" and r.messages[-1]["content"] == r.outcome.answer
        if r.outcome.status == "parse_error":
            assert r.parse_errors == 2
