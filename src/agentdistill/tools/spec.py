"""A tool is a typed Python function plus its docstring, described to models as a JSON-Schema spec.

The spec is the "function" object OpenAI-style APIs use: ``{"name", "description", "parameters"}``.
It is derived from the function itself, so a tool is written once, as ordinary Python, and the
system prompt, the argument validator and the recorded traces all read the same description:

- parameter types come from the type hints (str -> string, int -> integer, float -> number,
  bool -> boolean, list[X] -> array, Literal[...] -> enum, X | None -> optional X);
- a parameter with a default is optional, one without is required;
- the docstring's first paragraph is the description, its ``Args:`` lines describe the parameters.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

_SCALARS: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def json_schema_for(tp: Any) -> dict[str, Any]:
    """The JSON Schema of one parameter type. Raises TypeError for types a model cannot write as JSON."""
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    origin = get_origin(tp)
    if origin is Literal:
        values = list(get_args(tp))
        return {"type": _SCALARS[type(values[0])], "enum": values}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return json_schema_for(options[0])
        return {"anyOf": [json_schema_for(a) for a in options]}
    if tp in _SCALARS:  # bool is checked before int by dict identity, not isinstance
        return {"type": _SCALARS[tp]}
    if tp is list or origin is list:
        args = get_args(tp)
        return {"type": "array", "items": json_schema_for(args[0])} if args else {"type": "array"}
    if tp is dict or origin is dict:
        return {"type": "object"}
    raise TypeError(f"unsupported tool parameter type {tp!r}: use str, int, float, bool, list, dict or Literal")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {parameter: description})."""
    doc = inspect.cleandoc(doc or "")
    sections = re.split(r"\n\s*(?=(?:Args|Arguments|Parameters|Returns|Raises|Examples?):\s*\n)", doc)
    description = " ".join(sections[0].split())
    params: dict[str, str] = {}
    for section in sections[1:]:
        lines = [ln for ln in section.splitlines()[1:] if ln.strip()]
        if not re.match(r"(Args|Arguments|Parameters):", section) or not lines:
            continue
        base = len(lines[0]) - len(lines[0].lstrip())  # deeper lines continue the previous parameter
        current = None
        for line in lines:
            m = re.match(r"\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", line)
            if m and len(line) - len(line.lstrip()) == base:
                current = m.group(1)
                params[current] = m.group(2).strip()
            elif current:
                params[current] += " " + line.strip()
    return description, params


_TYPE_WORDS = {"string": "str", "integer": "int", "number": "number", "boolean": "bool", "array": "list",
               "object": "dict"}


def _short_type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "|".join(map(str, schema["enum"]))
    if "anyOf" in schema:
        return "|".join(_short_type(s) for s in schema["anyOf"])
    return _TYPE_WORDS.get(schema.get("type", ""), "any")


ASKED = "asked"  # the keyword-only parameter through which a tool receives the user's latest message


@dataclass
class Tool:
    """One callable tool and its spec. ``fn`` receives the validated JSON arguments as keywords, and, where it
    has a keyword-only parameter named ``asked`` (``takes_asked``), the user's latest message: context the
    model does not write, so it is not in the spec (a search may look for the asker's own words too)."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout_s: float | None = None  # None: the registry's default
    takes_asked: bool = False
    # How closely what the tool holds matches a message (a cosine similarity; a search over documents has one):
    # the runtime's ``act_above_relevance`` reads it to keep the student from answering such a message unaided.
    relevance: Callable[[str], float] | None = None

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None, description: str | None = None,
                      timeout_s: float | None = None) -> Tool:
        """Build the spec from ``fn``'s signature, type hints and docstring."""
        hints = typing.get_type_hints(fn)
        doc_description, doc_params = parse_docstring(fn.__doc__)
        properties: dict[str, Any] = {}
        required: list[str] = []
        takes_asked = False
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if pname == ASKED and param.kind == param.KEYWORD_ONLY:
                takes_asked = True
                continue
            schema = json_schema_for(hints.get(pname, param.annotation))
            if pname in doc_params:
                schema["description"] = doc_params[pname]
            if param.default is param.empty:
                required.append(pname)
            elif param.default is not None:
                schema["default"] = param.default
            properties[pname] = schema
        parameters = {"type": "object", "properties": properties, "required": required,
                      "additionalProperties": False}
        tool_name = name or fn.__name__
        text = description or doc_description
        if not text:
            raise ValueError(f"tool {tool_name!r} needs a docstring: the model only knows what it says")
        return cls(name=tool_name, description=text, parameters=parameters, fn=fn, timeout_s=timeout_s,
                   takes_asked=takes_asked)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    @property
    def summary(self) -> str:
        """The description's first sentence: what fits in a small model's system prompt."""
        m = re.match(r"(.+?[.!?])(?=\s+[A-Z(]|\s*$)", self.description)  # "Art. 51" does not end it
        return m.group(1) if m else self.description

    def signature(self) -> str:
        """A compact call signature, e.g. ``convert_units(value: number, from_unit: str, to_unit: str)``."""
        required = set(self.parameters.get("required", []))
        parts = [f"{p}{'' if p in required else '?'}: {_short_type(s)}"
                 for p, s in self.parameters.get("properties", {}).items()]
        return f"{self.name}({', '.join(parts)})"


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, timeout_s: float | None = None) -> Any:
    """Decorator form of ``Tool.from_function`` for user tool packs: ``@tool`` or ``@tool(name=...)``."""
    if fn is None:
        return lambda f: Tool.from_function(f, name=name, timeout_s=timeout_s)
    return Tool.from_function(fn, name=name, timeout_s=timeout_s)
