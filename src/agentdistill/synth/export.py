"""Export accepted training traces to formats other trainers read, so the data can leave this project.

- ``export/train.trl.jsonl``: TRL's conversational format, ``{"messages": [{"role", "content"}, ...]}``,
  made by ``models.templates.to_chat_messages`` (assistant steps rendered in our ReAct wire format, tool
  results in an ``observation`` role that our chat templates know).
- ``export/train.sharegpt.jsonl``: LLaMA-Factory's ShareGPT format, ``{"conversations": [{"from",
  "value"}], "system", "tools"}``. LLaMA-Factory wants human/observation turns at odd positions and
  gpt/function_call turns at even ones, a ``function_call`` value that is the JSON of the call(s)
  (``{"name", "arguments"}``, a list for parallel calls) and the tools as a JSON string. Our one-sentence
  thoughts go in front as ``<think>...</think>``, the thought markers LLaMA-Factory strips from a
  function call (and keeps for reasoning templates).
- ``export/dataset_info.json``: the LLaMA-Factory dataset description for the ShareGPT file, so the
  folder can be passed as ``dataset_dir`` as is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentdistill.jsonl import write_json_atomic, write_records
from agentdistill.records import Trace
from agentdistill.run_layout import RunLayout


def to_trl(trace: Trace) -> dict[str, Any]:
    """One TRL conversational example (the chat template renders it; only assistant turns are trained)."""
    from agentdistill.models.templates import to_chat_messages

    return {"messages": to_chat_messages(trace.messages)}


def _with_thought(thought: str, value: str) -> str:
    thought = " ".join(thought.split())
    return f"<think>\n{thought}\n</think>\n\n{value}" if thought else value


def to_sharegpt(trace: Trace) -> dict[str, Any]:
    """One LLaMA-Factory ShareGPT example; raises ValueError if the turns cannot alternate as it requires."""
    system = ""
    conversations: list[dict[str, str]] = []
    for m in trace.messages:
        role = m["role"]
        if role == "system":
            system = m["content"]
        elif role == "user":
            conversations.append({"from": "human", "value": m["content"]})
        elif role == "assistant" and "tool_calls" in m:
            calls = [{"name": c["name"], "arguments": c.get("arguments", {})} for c in m["tool_calls"]]
            payload = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            conversations.append({"from": "function_call", "value": _with_thought(m["thought"], payload)})
        elif role == "assistant":
            conversations.append({"from": "gpt", "value": _with_thought(m["thought"], m["content"])})
        elif role == "tool":
            # parallel calls give several results in a row; LLaMA-Factory wants one observation turn
            if conversations and conversations[-1]["from"] == "observation":
                conversations[-1]["value"] += "\n" + m["content"]
            else:
                conversations.append({"from": "observation", "value": m["content"]})
    for i, turn in enumerate(conversations):
        want = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if turn["from"] not in want:
            raise ValueError(f"trace {trace.id}: turn {i} is {turn['from']!r}, LLaMA-Factory expects one of {want}")
    if not conversations or conversations[-1]["from"] != "gpt":
        raise ValueError(f"trace {trace.id}: does not end with an answer")
    return {"conversations": conversations, "system": system, "tools": json.dumps(trace.tools, ensure_ascii=False)}


def export_traces(run_dir: Path, traces: list[Trace]) -> dict[str, Path]:
    """Write the training split of ``traces`` in both formats (atomically) and return the paths."""
    layout = RunLayout(run_dir)
    train = [t for t in traces if t.split == "train"]
    trl_path = layout.trl_export
    sharegpt_path = layout.sharegpt_export
    write_records(trl_path, [to_trl(t) for t in train])
    write_records(sharegpt_path, [to_sharegpt(t) for t in train])
    info = {
        "agentdistill_train": {
            "file_name": sharegpt_path.name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        }
    }
    write_json_atomic(layout.dataset_info, info)
    return {"trl": trl_path, "sharegpt": sharegpt_path}
