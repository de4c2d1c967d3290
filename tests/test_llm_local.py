"""The local transformers backend on the bundled SmolLM2: batching with left padding changes nothing,
a cached shared prompt prefix changes nothing, stop sequences and prefixes work, sampling gives n
candidates with log-probabilities."""

from __future__ import annotations

import pytest
import torch

from agentdistill.agent.prompt import system_prompt
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
    # float32: the equalities below are exact there; in bf16 a row's padding changes the rounding of its sums
    cfg = RunConfig()
    cfg.models.generation_bf16 = False
    backend = make_llm("student", None, cfg, batch_size=4, device="cpu")
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
    assert batched[0][0].elapsed_s == batched[1][0].elapsed_s > 0  # one batch: its time is each row's time


def with_tools_prompt(question: str, **kw) -> GenerationRequest:
    system = system_prompt(load_tools(RunConfig(), None))
    kw.setdefault("max_tokens", 12)
    return GenerationRequest(messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
                             **kw)


def test_a_cached_system_prompt_gives_the_same_greedy_text_as_no_cache(llm):
    first = [with_tools_prompt("What is 2 + 2?"), with_tools_prompt("How many days of annual leave do I get?")]
    later = [with_tools_prompt("Convert 5 km to miles."), with_tools_prompt("Hello")]
    batched = llm.generate(first) + llm.generate(later)  # the second batch reuses the first one's prefix
    system_tokens = len(llm.tokenizer(first[0].messages[0]["content"])["input_ids"])
    assert len(llm._prefix_ids) >= system_tokens
    alone = [llm.generate([r])[0] for r in first + later]  # one row: never cached
    assert [c[0].text for c in batched] == [c[0].text for c in alone]


def test_sampling_n_candidates_of_several_rows_shares_the_cached_prefix(llm):
    requests = [with_tools_prompt(q, temperature=1.0, n=2, max_tokens=6) for q in ("Hi", "What is 3 * 7?")]
    out = llm.generate(requests)
    assert [len(c) for c in out] == [2, 2]
    assert all(c.text for cands in out for c in cands)


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
