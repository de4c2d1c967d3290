"""`agentdistill bench bfcl`: prompt any model with BFCL's functions, parse its calls, score them (evaluate.bfcl).

The prompt is the project's own (agent/prompt.py): the entry's functions become tools in the system
message, one line each (signature and first sentence), and the model replies in the wire format
(agent/wire.py). So a distilled student is measured in the format it learned, and every model is
prompted alike. One line is added for BFCL's parallel categories, in every category so that the prompt
does not give the answer's shape away: several calls are written as several ``Action:`` lines, one call
each (what ``wire.parse_step`` already reads); one ``Action:`` holding a JSON list of call objects is
accepted too. A reply is one assistant turn; the model is stopped at "Observation:", as in the agent.

Each entry's row goes to ``results.jsonl`` when its batch is done, so a killed run resumes where it
stopped (ids already there are skipped); ``metrics.json`` holds, per category, the accuracy and its
95% Wilson score interval (exact enough at n = 5 and at n = 400, and cheap).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agentdistill.agent.prompt import system_prompt
from agentdistill.agent.wire import STOP_SEQUENCES, WireFormatError, parse_step
from agentdistill.errors import UserError
from agentdistill.evaluate.bfcl import BfclEntry, check_entry, read_category
from agentdistill.jsonl import JsonlAppender, iter_json, write_json_atomic
from agentdistill.llm.base import LLM, GenerationRequest
from agentdistill.llm.grammar import step_grammar
from agentdistill.run_layout import METRICS, RESULTS
from agentdistill.tools.registry import ToolRegistry
from agentdistill.tools.spec import Tool

PARALLEL_HINT = "To call several tools at once, write one Action line per call."
MAX_CALLS = 8  # Action lines one reply may hold under the grammar: more than any BFCL v3 answer has
_DECODING = {True: "under the step grammar", False: "free"}
# BFCL's own type names as JSON Schema, so the signature shows "number", "dict" and "list" for them.
_SCHEMA_TYPES = {"float": "number", "dict": "object", "tuple": "array", "any": None}
_JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}


def _schema(param: dict[str, Any]) -> dict[str, Any]:
    """One BFCL parameter document as JSON Schema, items and nested properties included."""
    out = dict(param)
    kind = _SCHEMA_TYPES.get(param.get("type", ""), param.get("type"))
    if kind in _JSON_TYPES:
        out["type"] = kind
    else:
        out.pop("type", None)
    if isinstance(param.get("items"), dict):
        out["items"] = _schema(param["items"])
    if isinstance(param.get("properties"), dict):
        out["properties"] = {k: _schema(v) for k, v in param["properties"].items() if isinstance(v, dict)}
    return out


def as_tool(function: dict[str, Any]) -> Tool:
    """A BFCL function document as a Tool (never called: only its description reaches the model)."""
    params = function.get("parameters") or {}
    parameters = {"type": "object", "required": list(params.get("required") or []),
                  "properties": {k: _schema(v) for k, v in (params.get("properties") or {}).items()}}
    return Tool(name=function["name"], description=function.get("description") or function["name"],
                parameters=parameters, fn=lambda **_: None)


def tools_for(entry: BfclEntry) -> ToolRegistry:
    """The entry's functions as the tools its prompt offers."""
    return ToolRegistry([as_tool(f) for f in entry.functions])


def messages_for(entry: BfclEntry) -> list[dict[str, Any]]:
    """The canonical messages of one entry: our system prompt (the entry's own system text as its intro)."""
    own_system = " ".join(m["content"] for m in entry.messages if m["role"] == "system")
    prompt = system_prompt(tools_for(entry), intro=own_system or None)
    # the hint goes with the reply format, before the example that closes the prompt
    head, example, tail = prompt.rpartition("\nExample:")
    prompt = f"{head}\n{PARALLEL_HINT}{example}{tail}" if example else f"{prompt}\n{PARALLEL_HINT}"
    return [{"role": "system", "content": prompt},
            *({"role": m["role"], "content": m["content"]} for m in entry.messages if m["role"] != "system")]


_LIST_ACTION = re.compile(r"^[ \t>*#]*Action[ \t*]*:\s*(?=\[)", re.I | re.M)


def parse_calls(text: str) -> list[dict[str, dict[str, Any]]] | None:
    """The calls of a reply as BFCL's checker takes them, ``[{name: arguments}, ...]``; ``[]`` for an answer
    without a call; None when the reply does not parse (BFCL's decoder failing)."""
    try:
        step = parse_step(text)
    except WireFormatError:
        m = _LIST_ACTION.search(text)
        if m is None:
            return None
        try:
            items, _ = json.JSONDecoder().raw_decode(text, m.end())
        except json.JSONDecodeError:
            return None
        if not isinstance(items, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                  and isinstance(c.get("arguments", {}), dict) for c in items):
            return None
        return [{c["name"]: c.get("arguments", {})} for c in items]
    return [{c["name"]: c["arguments"]} for c in step.tool_calls]


def wilson_interval(k: int, n: int) -> list[float] | None:
    """The 95% Wilson score interval of a proportion k/n (None for n = 0)."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def summarize(rows: list[dict[str, Any]], categories: list[str]) -> dict[str, Any]:
    """Per category: n, correct, accuracy, its 95% interval, and the share of replies that parsed."""
    out: dict[str, Any] = {}
    for category in categories:
        mine = [r for r in rows if r["category"] == category]
        k = sum(r["valid"] for r in mine)
        out[category] = {"n": len(mine), "correct": k, "accuracy": k / len(mine) if mine else None,
                         "ci95": wilson_interval(k, len(mine)),
                         "parsed_rate": sum(r["calls"] is not None for r in mine) / len(mine) if mine else None,
                         "errors": _count(r["error_type"] for r in mine if not r["valid"])}
    return out


def _count(keys: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def rescore(entry: BfclEntry, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its calls and verdict (valid, error_type, error) from its ``output`` text."""
    calls = parse_calls(row["output"])
    verdict = check_entry(entry, calls)
    return {**row, "valid": verdict.valid, "error_type": "" if verdict.valid else verdict.error_type,
            "error": "" if verdict.valid else verdict.error, "calls": calls}


def request_for(entry: BfclEntry, max_tokens: int, grammar: bool) -> GenerationRequest:
    """The generation request of one entry; with ``grammar``, decoded under the step grammar of its functions,
    up to ``MAX_CALLS`` Action lines in every category (so the grammar, like the prompt, does not give the
    answer's shape away)."""
    return GenerationRequest(messages=messages_for(entry), stop=list(STOP_SEQUENCES), max_tokens=max_tokens,
                             grammar=step_grammar(tools_for(entry), max_actions=MAX_CALLS) if grammar else None)


def run_bfcl(llm: LLM, data_dir: Path, categories: list[str], out_dir: Path, limit: int | None = None,
             max_tokens: int = 256, chunk: int = 8, progress: Callable[[int, int], None] | None = None,
             grammar: bool = True) -> dict[str, Any]:
    """Score ``llm`` on the categories' first ``limit`` entries, ``chunk`` entries a
    generation call (each call's rows are saved when it returns); resumes from ``out_dir/results.jsonl``.
    ``grammar``: decode under the step grammar of each entry's functions (backends that cannot constrain
    decoding ignore it). Returns metrics.json's content."""
    entries = [e for c in categories for e in read_category(data_dir, c)[:limit]]
    out_dir = Path(out_dir)
    results_path = out_dir / RESULTS
    done: dict[str, dict[str, Any]] = {}
    if results_path.exists():
        for row in iter_json(results_path):
            if row.get("model") != llm.name:
                raise UserError(f"{results_path} holds results of {row.get('model')!r}, not {llm.name!r}.",
                                hint="Give this model its own --out folder.")
            stored = row.get("grammar", False)  # rows written before the field were decoded free
            if stored != grammar:
                raise UserError(f"{results_path} holds replies decoded {_DECODING[stored]}; this run decodes "
                                f"{_DECODING[grammar]}.", hint="Give each decoding its own --out folder.")
            done[row["id"]] = row
    todo = [e for e in entries if e.id not in done]
    with JsonlAppender(results_path) as out:
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            began = time.perf_counter()
            replies = llm.generate([request_for(e, max_tokens, grammar) for e in batch])
            elapsed = time.perf_counter() - began
            for entry, reply in zip(batch, replies, strict=True):
                row = rescore(entry, {"id": entry.id, "category": entry.category, "model": llm.name, "grammar": grammar,
                                      "output": reply[0].text if reply else "",
                                      "latency_s": round(elapsed / len(batch), 3)})
                out.append(row)
                done[entry.id] = row
            if progress is not None:
                progress(len(entries) - len(todo) + start + len(batch), len(entries))
    # Scored again from the stored replies by the current checker, so a checker fix needs no new generation.
    rows = [rescore(e, done[e.id]) for e in entries]
    metrics = {"model": llm.name, "data": str(Path(data_dir).resolve()), "limit": limit, "max_tokens": max_tokens,
               "prompt": "wire", "grammar": grammar, "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "categories": summarize(rows, categories)}
    write_json_atomic(out_dir / METRICS, metrics)
    return metrics
