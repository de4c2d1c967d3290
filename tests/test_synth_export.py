"""Export of training traces to TRL conversational and LLaMA-Factory ShareGPT files."""

from __future__ import annotations

import json

import pytest

from agentdistill.agent.runtime import run_agents
from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.domains.uae_labour.teacher import RuleTeacher
from agentdistill.records import Outcome, Trace
from agentdistill.synth.export import export_traces, to_sharegpt, to_trl
from agentdistill.tools import load_tools


@pytest.fixture(scope="module")
def traces():
    tools = load_tools(RunConfig(tools=ToolsConfig(packs=["general"])), None)
    questions = ["What is 18% of 4,500?", "Hello!", "How many days are there between 2024-01-15 and 2024-06-30?"]
    out = []
    for i, r in run_agents(RuleTeacher(tool_names=tools.names()), tools, questions, max_steps=3):
        out.append(Trace(id=f"t{i}", question_id=f"q{i}", tools=tools.specs(), messages=r.messages, teacher="rule",
                         outcome=r.outcome, split="test" if i == 2 else "train"))
    return sorted(out, key=lambda t: t.id)


def test_sharegpt_alternates_as_llama_factory_requires(traces):
    ex = to_sharegpt(traces[0])
    roles = [t["from"] for t in ex["conversations"]]
    assert roles == ["human", "function_call", "observation", "gpt"]
    call = ex["conversations"][1]["value"]
    thought, _, payload = call.partition("</think>")
    assert thought.startswith("<think>\n") and json.loads(payload) == {"name": "calculator",
                                                                        "arguments": {"expression": "18% of 4,500"}}
    assert ex["system"] == traces[0].messages[0]["content"]
    assert [t["name"] for t in json.loads(ex["tools"])] == [t["name"] for t in traces[0].tools]
    assert [t["from"] for t in to_sharegpt(traces[1])["conversations"]] == ["human", "gpt"]


def test_parallel_results_merge_into_one_observation(traces):
    t = traces[0].model_copy(deep=True)
    t.messages[2]["tool_calls"].append({"name": "calculator", "arguments": {"expression": "1 + 1"}})
    t.messages.insert(4, {"role": "tool", "name": "calculator", "content": "1 + 1 = 2"})
    ex = to_sharegpt(t)
    assert [c["from"] for c in ex["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(ex["conversations"][1]["value"].split("</think>")[1])[1]["name"] == "calculator"
    assert ex["conversations"][2]["value"].endswith("1 + 1 = 2")


def test_a_trace_without_an_answer_cannot_be_exported(traces):
    t = traces[0].model_copy(deep=True)
    t.messages = t.messages[:4]
    t.outcome = Outcome(answer=None, steps=1, status="max_steps")
    with pytest.raises(ValueError, match="does not end with an answer"):
        to_sharegpt(t)


def test_trl_messages_use_the_chat_roles_and_the_wire_format(traces):
    msgs = to_trl(traces[0])["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "observation", "assistant"]
    assert msgs[2]["content"].startswith("Thought: ") and "\nAction: {" in msgs[2]["content"]
    assert msgs[4]["content"].split("\n")[1].startswith("Answer: ")


def test_only_the_training_split_is_exported(traces, tmp_path):
    paths = export_traces(tmp_path, traces)
    trl = paths["trl"].read_text().splitlines()
    sharegpt = paths["sharegpt"].read_text().splitlines()
    assert len(trl) == len(sharegpt) == 2  # trace 2 is in the test split
    info = json.loads((tmp_path / "export" / "dataset_info.json").read_text())
    assert info["agentdistill_train"]["file_name"] == paths["sharegpt"].name
    assert info["agentdistill_train"]["formatting"] == "sharegpt"
