"""Constrained tool names: once a reply opens an action object, the bundled SmolLM2 can only write a
registered tool's name; outside that span its text is untouched."""

from __future__ import annotations

import pytest
import torch

from agentdistill.agent.runtime import run_agent
from agentdistill.agent.wire import parse_step
from agentdistill.config import RunConfig
from agentdistill.llm import make_llm
from agentdistill.llm.base import GenerationRequest
from agentdistill.llm.constrain import ToolNameConstraint
from agentdistill.tools import load_tools

# names no untuned model would write on its own, so a registered name in the output shows the constraint worked
ODD_TOOLS = ["zq_tally", "zq_lookup_rule"]
OPEN_ACTION = 'Thought: I will use a tool.\nAction: {"name": "'


@pytest.fixture(scope="module")
def llm():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_llm("student", None, RunConfig(), batch_size=4, device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def constraint(llm):
    return ToolNameConstraint(llm.tokenizer, ODD_TOOLS)


@pytest.mark.parametrize(("text", "partial"), [
    ('Thought: t\nAction: {"name": "zq_t', '"name": "zq_t'),
    ("Action: {", ""),
    ('Action:{"name":"zq', '"name":"zq'),
    ('Action: {"name": "zq_tally"', None),  # complete: the arguments are free
    ('Action: {"name": "search', None),  # left the shape: the parser's business
    ('Action: {"arguments": {}', None),
    ("Thought: no action yet", None),
    ('Action: {"name": "zq_tally", "arguments": {}}\nAction: {"name": "zq_l', '"name": "zq_l'),  # the last action
])
def test_the_partial_name_is_the_text_after_the_last_open_action(constraint, text, partial):
    assert constraint.partial_name(text) == partial


def test_allowed_tokens_only_lead_to_registered_names(constraint, llm):
    allowed = [llm.tokenizer.decode([i]) for i in constraint.allowed('"name": "zq_')]
    assert allowed
    targets = [f'{name}"' for name in ODD_TOOLS]
    assert all(any(t.startswith(f"zq_{s}") or f"zq_{s}".startswith(t) for t in targets) for s in allowed)
    assert "t" in allowed and "l" in allowed


def ask_to_act(tool_names, **kw) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": "How many days of annual leave do I get?"}],
                             prefix=OPEN_ACTION, max_tokens=20, tool_names=tool_names, **kw)


def test_a_constrained_reply_names_a_registered_tool_and_an_unconstrained_one_does_not(llm):
    free, constrained = llm.generate([ask_to_act(None), ask_to_act(ODD_TOOLS)])
    name_of = [c.text[len(OPEN_ACTION):].split('"')[0] for c in (free[0], constrained[0])]
    assert name_of[0] not in ODD_TOOLS
    assert name_of[1] in ODD_TOOLS


def test_every_sampled_candidate_names_a_registered_tool(llm):
    [candidates] = llm.generate([ask_to_act(ODD_TOOLS, temperature=1.0, n=4)])
    assert len(candidates) == 4
    assert {c.text[len(OPEN_ACTION):].split('"')[0] for c in candidates} <= set(ODD_TOOLS)


def test_the_runtime_constrains_the_student_to_its_tools(llm):
    tools = load_tools(RunConfig(), None)
    result = run_agent(llm, tools, "What is 12 * 7?", max_steps=1, first_thought_prefix=OPEN_ACTION,
                       constrain_tool_names=True, max_tokens=48)
    step = result.messages[2]
    if step["role"] == "assistant":
        assert step["tool_calls"][0]["name"] in tools.names()
    else:  # the name was forced, so only the arguments after it can have failed to parse
        raw = result.raw_steps[0]
        assert raw.startswith(OPEN_ACTION)
        assert raw[len(OPEN_ACTION):].split('"')[0] in tools.names()
        with pytest.raises(ValueError):
            parse_step(raw)
