"""The local transformers backend on the bundled SmolLM2: batching with left padding changes nothing,
stop sequences and prefixes work, sampling gives n candidates with log-probabilities."""

from __future__ import annotations

import pytest
import torch

from agentdistill.agent.runtime import run_agent
from agentdistill.config import RunConfig
from agentdistill.llm import make_llm
from agentdistill.llm.base import GenerationRequest
from agentdistill.llm.local import LocalBackend
from agentdistill.records import Trace
from agentdistill.tools import load_tools


@pytest.fixture(scope="module")
def llm():
    # One intra-op thread: on a shared 2-core box, two spinning OpenMP threads made generation ~5x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    backend = make_llm("student", None, RunConfig(), batch_size=4, device="cpu")
    assert isinstance(backend, LocalBackend)
    yield backend
    torch.set_num_threads(threads)


def ask(text: str, **kw) -> GenerationRequest:
    kw.setdefault("max_tokens", 12)
    return GenerationRequest(messages=[{"role": "user", "content": text}], **kw)


def test_a_padded_batch_gives_the_same_greedy_text_as_one_by_one(llm):
    short = ask("Hi!")
    long = ask("Name three colours of the rainbow, separated by commas, and nothing else please.")
    batched = llm.generate([short, long])
    alone = [llm.generate([short])[0], llm.generate([long])[0]]
    assert [c[0].text for c in batched] == [c[0].text for c in alone]
    assert all(c[0].text.strip() for c in batched)


def test_stop_sequences_cut_the_text(llm):
    free = llm.generate([ask("Count from one to ten in words: one, two,", max_tokens=16)])[0][0].text
    word = next(w.strip(",. ") for w in free.split() if w.strip(",. "))
    cut = llm.generate([ask("Count from one to ten in words: one, two,", max_tokens=16, stop=[word])])[0][0]
    assert word not in cut.text
    assert cut.finish_reason == "stop"
    assert free.startswith(cut.text.rstrip())


def test_sampling_returns_n_candidates_with_logprobs_and_keeps_the_prefix(llm):
    (cands,) = llm.generate([ask("Say something.", temperature=1.0, n=3, logprobs=True, prefix="Thought:")])
    assert len(cands) == 3
    for c in cands:
        assert c.text.startswith("Thought:")
        assert c.logprobs and all(lp <= 0 for lp in c.logprobs)
        assert len(c.logprobs) <= 12


def test_the_agent_loop_runs_on_the_local_model(llm):
    tools = load_tools(RunConfig(), None)
    result = run_agent(llm, tools, "What is 12 * 12?", max_steps=1, max_tokens=32, first_thought_prefix="Thought:")
    assert result.outcome.steps == 1
    assert result.raw_steps[0].startswith("Thought:")
    Trace(id="t", question_id="q", tools=tools.specs(), messages=result.messages, teacher=llm.name,
          outcome=result.outcome)
