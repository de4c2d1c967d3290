"""BFCL v3 (the Berkeley Function-Calling Leaderboard): its data files and an AST checker equal to its own.

A BFCL category is a JSON-lines file ``BFCL_v3_<category>.json`` of entries ``{id, question, function}``:
``question`` is a list of turns (one for the single-turn categories read here), each a list of chat
messages; ``function`` the function documents the model may call (BFCL's own types: ``dict``,
``float``, ``tuple``, ``any`` beside the JSON-Schema names). The answers sit in
``possible_answer/BFCL_v3_<category>.json`` as ``{id, ground_truth}``: a list with one
``{function_name: {parameter: [allowed values]}}`` per call the model must make, where ``""`` among a
parameter's allowed values means it may be left out.

The checker follows BFCL's ``ast_checker.py`` (berkeley-function-call-leaderboard,
``bfcl/eval_checker/ast_eval``) for Python, rule by rule:

- simple: exactly one call; the function's name; every required parameter present; no parameter
  the function or the answer does not know; each value of its documented type (exact Python type, so
  ``True`` is no integer; an int is accepted for a float at the top level only; the items of an
  ``array``/``tuple`` checked one level deep against the answer's item types; a value of the answer's
  own type where that differs from the documented one, BFCL's "variable" case, skips the value check);
  each value among the allowed ones: strings after ``standardize_string`` (spaces and ``,./-_*^``
  removed, lower-cased, ``'`` as ``"``), lists element by element with their strings standardized,
  dicts key by key (every key known, every value allowed, every key without ``""`` present), lists of
  dicts in order; every answer parameter without ``""`` present.
- multiple: exactly one call, checked as simple against the answer's function.
- parallel, parallel_multiple: as many calls as the answer has, matched in any order, each to a
  distinct call.
- irrelevance: passes when the reply holds no call (a reply that does not parse is no call, as in
  BFCL, whose decoder failing counts as "no function call"); relevance: passes when it holds one.

Java and JavaScript categories convert string values with BFCL's type converters, which this module
does not port: they are refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdistill.errors import UserError

CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance",
              "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
              "live_relevance")

# BFCL's PYTHON_TYPE_MAPPING, plus the JSON-Schema names some live entries use.
PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list, "dict": dict,
    "any": str, "number": float, "object": dict,
}
NESTED_TYPES = ("array", "tuple")  # types whose items BFCL checks, one level deep


@dataclass
class BfclEntry:
    id: str
    category: str
    messages: list[dict[str, Any]]  # the chat of the first (only) turn
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, dict[str, list[Any]]]] | None  # None for (ir)relevance


@dataclass
class Verdict:
    valid: bool
    error_type: str = ""
    error: str = ""


def is_relevance(category: str) -> bool:
    """(Ir)relevance categories are scored on whether a call was made, not on what it was."""
    return "relevance" in category


def _read_lines(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_category(data_dir: Path, category: str) -> list[BfclEntry]:
    """The entries of one category, each with its possible answer (a UserError when the files are missing)."""
    if "java" in category:
        raise UserError(f"BFCL category {category!r} is not supported: only the Python categories are checked.",
                        hint=f"Use some of: {', '.join(CATEGORIES)}.")
    path = Path(data_dir) / f"BFCL_v3_{category}.json"
    if not path.exists():
        raise UserError(f"{path} does not exist.",
                        hint="--data is the folder holding BFCL_v3_<category>.json and possible_answer/.")
    answers: dict[str, Any] = {}
    if not is_relevance(category):
        answer_path = Path(data_dir) / "possible_answer" / path.name
        if not answer_path.exists():
            raise UserError(f"{answer_path} does not exist: category {category!r} is scored against its answers.")
        answers = {a["id"]: a["ground_truth"] for a in _read_lines(answer_path)}
    entries = []
    for e in _read_lines(path):
        if not is_relevance(category) and e["id"] not in answers:
            raise UserError(f"{answer_path} has no answer for {e['id']}.")
        if len(e["question"]) != 1:
            raise UserError(f"{e['id']} has {len(e['question'])} turns: multi-turn categories are not supported.")
        entries.append(BfclEntry(id=e["id"], category=category, messages=e["question"][0],
                                 functions=e["function"], ground_truth=answers.get(e["id"])))
    return entries


# ---------------------------------------------------------------------------------------------- checker


def standardize_string(text: str) -> str:
    """BFCL's string normalisation: "April 1, 2024" == "april 1 2024" == "April-1-2024"."""
    return re.sub(r"[ ,./\-_*^]", "", text).lower().replace("'", '"')


def _answer_type(allowed: list[Any]) -> type | None:
    """The type of the first allowed value that is not the "may be omitted" marker."""
    return next((type(a) for a in allowed if a != ""), None)


def _type_ok(value: Any, allowed: list[Any], expected: type, nested: type | None) -> tuple[bool, bool]:
    """(valid, is_variable) as BFCL's ``type_checker``: exact types, items checked one level deep."""
    answer_type = _answer_type(allowed)
    is_variable = answer_type is not None and answer_type != expected
    if type(value) is expected:
        if nested is None:
            return True, is_variable
        for allowed_item in allowed:
            items_ok = True  # a list answer whose items all type-check (a non-list answer passes as BFCL's does)
            if type(allowed_item) is list:
                items_ok = all(_type_ok(v, allowed_item, nested, None)[0] for v in value)
            if items_ok:
                return True, is_variable
        return False, False
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, False


def _standardized(values: list[Any]) -> list[Any]:
    return [standardize_string(v) if type(v) is str else v for v in values]


def _dict_ok(value: dict[str, Any], allowed: list[Any]) -> bool:
    for answer in allowed:
        if answer == "":
            continue
        keys_known = all(k in answer and (standardize_string(v) if type(v) is str else v)
                         in _standardized(answer[k]) for k, v in value.items())
        if keys_known and all(k in value or "" in vals for k, vals in answer.items()):
            return True
    return False


def _list_of_dicts_ok(value: list[Any], allowed: list[Any]) -> bool:
    return any(len(value) == len(answer) and all(_dict_ok(v, [a]) for v, a in zip(value, answer, strict=True))
               for answer in allowed)


def check_call(function: dict[str, Any], call: dict[str, dict[str, Any]], answer: dict[str, dict[str, list[Any]]]
               ) -> Verdict:
    """BFCL's ``simple_function_checker``: one call ``{name: arguments}`` against one answer ``{name: {param:
    [allowed]}}`` for the function documented by ``function``."""
    allowed_by_param = next(iter(answer.values()))
    name = function["name"]
    properties = function["parameters"].get("properties", {})
    if name not in call:
        return Verdict(False, "wrong_func_name", f"function {name!r} not called")
    arguments = call[name]
    for param in function["parameters"].get("required", []):
        if param not in arguments:
            return Verdict(False, "missing_required", f"missing required parameter {param!r}")
    for param, value in arguments.items():
        if param not in properties or param not in allowed_by_param:
            return Verdict(False, "unexpected_param", f"unexpected parameter {param!r}")
        allowed = allowed_by_param[param]
        type_name = properties[param].get("type", "any")
        expected = PYTHON_TYPES.get(type_name, str)
        nested = None
        if type_name in NESTED_TYPES:
            nested = PYTHON_TYPES.get((properties[param].get("items") or {}).get("type", "any"), str)
        if type_name in ("float", "number") and type(value) is int:  # Python widens an int where a float is due
            value = float(value)
        ok, is_variable = _type_ok(value, allowed, expected, nested)
        if not ok:
            return Verdict(False, "type_error", f"parameter {param!r}: expected {type_name}, got "
                           f"{type(value).__name__} {value!r}")
        if is_variable:
            matched = value in allowed
        elif expected is dict:
            matched = _dict_ok(value, allowed)
        elif expected is list and nested is dict:
            matched = _list_of_dicts_ok(value, allowed)
        elif expected is str:
            matched = standardize_string(value) in _standardized(allowed)
        elif expected is list:
            # BFCL standardizes each allowed value item by item, which turns the "" marker into []
            matched = _standardized(list(value)) in [_standardized(a) if type(a) is list else []
                                                     for a in allowed if type(a) is list or a == ""]
        else:
            matched = value in allowed
        if not matched:
            return Verdict(False, "value_error", f"parameter {param!r}: {value!r} is not one of {allowed!r}")
    for param, allowed in allowed_by_param.items():
        if param not in arguments and "" not in allowed:
            return Verdict(False, "missing_optional", f"parameter {param!r} is neither given nor optional")
    return Verdict(True)


def _find_function(functions: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((f for f in functions if f["name"] == name), None)


def check_entry(entry: BfclEntry, calls: list[dict[str, dict[str, Any]]] | None) -> Verdict:
    """Score one reply: ``calls`` as ``[{name: arguments}, ...]`` in the model's order, or None when the reply
    did not parse (BFCL's decoder failing)."""
    if is_relevance(entry.category):
        called = bool(calls)
        if "irrelevance" in entry.category:
            return Verdict(not called, "" if not called else "irrelevance_called", "a function was called")
        return Verdict(called, "" if called else "relevance_no_call", "no function was called")
    if calls is None:
        return Verdict(False, "decoder_failed", "the reply holds no parsable call")
    answers = entry.ground_truth or []
    if len(calls) != len(answers):
        return Verdict(False, "wrong_count", f"{len(calls)} calls, expected {len(answers)}")
    if "parallel" not in entry.category:
        name = next(iter(answers[0]))
        function = _find_function(entry.functions, name) or entry.functions[0]
        return check_call(function, calls[0], answers[0])
    matched: set[int] = set()
    for i, answer in enumerate(answers):
        function = _find_function(entry.functions, next(iter(answer)))
        if function is None:
            return Verdict(False, "bad_answer", f"answer {i} names a function the entry does not document")
        last = Verdict(False, "cannot_find_match", f"no call matches answer {i}")
        for j, call in enumerate(calls):
            if j in matched:
                continue
            last = check_call(function, call, answer)
            if last.valid:
                matched.add(j)
                break
        if not last.valid:
            return Verdict(False, "cannot_find_match", f"no call matches answer {i} ({last.error})")
    return Verdict(True)
