"""The system prompt is short, lists every tool with its arguments, and its example is a valid call."""

from __future__ import annotations

import re

from example_packs import example_config

from agentdistill.agent.prompt import system_prompt
from agentdistill.agent.wire import parse_step
from agentdistill.tools import load_tools


def test_every_tool_appears_once_with_its_arguments():
    tools = load_tools(example_config(), None)
    prompt = system_prompt(tools)
    for t in tools:
        assert prompt.count(f"- {t.name}(") == 1
        for arg in t.parameters["properties"]:
            assert re.search(rf"- {t.name}\([^)]*\b{arg}\??:", prompt), (t.name, arg)
    assert "Thought:" in prompt and "Action:" in prompt and "Answer:" in prompt


def test_the_example_is_a_step_the_runtime_accepts():
    tools = load_tools(example_config(), None)
    prompt = system_prompt(tools)
    example = prompt[prompt.index("Example:") + len("Example:"):]
    step = parse_step(example)
    assert len(step.tool_calls) == 1
    call = step.tool_calls[0]
    assert tools.validate(call["name"], call["arguments"]) is None


def test_the_prompt_fits_a_small_models_budget():
    # ~4 characters per token: the default packs' prompt must stay near 500 tokens
    assert len(system_prompt(load_tools(example_config(), None))) < 2000
