"""One grammar for a ReAct step, built from the tools' JSON schemas (docs/design.md, "The step grammar").

A step as the wire format (agent/wire.py) renders it::

    Thought: <one line>
    Action: {"name": "<tool>", "arguments": {<that tool's arguments>}}

or::

    Thought: <one line>
    Answer: <text; a later line may not open another step>

``step_grammar(tools)`` writes it in GBNF, llama.cpp's grammar format, which llama-cpp-python's
``LlamaGrammar.from_string``, the llama.cpp server's ``grammar`` field, xgrammar's ``Grammar.from_ebnf`` and
llguidance's ``grammar_from("gbnf", ...)`` all read. The action is spaced as ``json.dumps`` spaces it; its name
is one of the tools'; its arguments are that tool's, each at most once, in any order (schema order for a tool
with more than ``ANY_ORDER_MAX`` arguments), every required one present, and each value of its type: a
string, an enum's or boolean's values, a number (an integer without a point), an array of its items, a nested
object. Ranges, patterns and formats are left to the registry's validation after the call.

What it never forbids: any thought, any tool, any value of the right type, and without ``quotes`` any answer.
It restricts syntax, not content (docs/design.md, "How quality is judged"); the two exceptions, off by default,
are ``quotes``: an answer made of sentences the tools returned (agent/quotes.py), and ``figures``: number
arguments that the conversation stated (agent/figures.py), each into an argument of its unit, and with ``units``
a choice among units only of a unit the conversation names.

A backend that prefills the start of a turn (``GenerationRequest.prefix``) either advances its matcher over
the prefix, or decodes under ``step_grammar(tools, prefix)``: the rest of the step after a prefix that ends
inside the thought line ("Thought: I should").
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from agentdistill.agent.figures import Figure, argument_units, computes_on_figures, figure_values, takes, unit_choice
from agentdistill.agent.wire import ACTION, ANSWER, OBSERVATION, THOUGHT

# a tool with at most this many arguments takes them in any order: one rule per set of arguments written
ANY_ORDER_MAX = 6
# compiled grammars a backend keeps: a server's clients may each send other tools, and quoted answers make one
# grammar per conversation step
MAX_GRAMMARS = 16
# sentences in one quoted answer (agent/quotes.py): a two-tool answer quotes one from each result, a rule may need two
MAX_QUOTES = 3
# a later line of an answer may not open one of these: the answer would run on into another step
_STEP_OPENERS = (THOUGHT, ACTION, ANSWER, OBSERVATION, "Action Input:", "Final Answer:", "Example:")
# digits of a number: bounded, so that a model cannot write digits for ever
_MAX_DIGITS = 15

_COMMON = r"""
string ::= "\"" char* "\""
char ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" hex hex hex hex)
hex ::= [0-9a-fA-F]
integer ::= "-"? ("0" | [1-9] [0-9]{0,DIGITS})
number ::= integer ("." [0-9]{1,DIGITS})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" (string ": " value (", " string ": " value)*)? "}"
array ::= "[" (value (", " value)*)? "]"
""".replace("DIGITS", str(_MAX_DIGITS - 1))


def keep_compiled(cache: dict[str, Any], grammar: str, compiled: Any) -> None:
    """Keep a backend's compiled form of ``grammar``, dropping the oldest one past ``MAX_GRAMMARS``."""
    if len(cache) >= MAX_GRAMMARS:
        cache.pop(next(iter(cache)))
    cache[grammar] = compiled


def step_grammar(tools: Any, prefix: str = "", arguments: bool = True, quotes: Sequence[str] = (),
                 max_quotes: int = MAX_QUOTES, max_actions: int = 1, figures: Sequence[Figure] | None = None,
                 units: Collection[str] | None = None, answer: bool = True, lead: Sequence[str] = (),
                 refused: Mapping[str, Mapping[str, Collection[float]]] | None = None) -> str:
    """The GBNF grammar of one ReAct step whose action calls one of ``tools`` (a ToolRegistry, or its ``specs()``:
    ``{"name", "description", "parameters"}`` dicts); with ``prefix``, of the rest of the step after it. A prefix
    must end inside the thought line (ValueError otherwise). With ``arguments`` false an action's arguments are any
    JSON object, not its tool's. With ``quotes`` an answer is one to ``max_quotes`` of them, verbatim, separated by
    a space (agent/quotes.py says why), and with ``lead`` too the first is one of ``lead``. With ``max_actions``
    above one a step may call up to that many tools at once, one ``Action:`` line each (parallel calls, as the
    prompt's hint writes them). With ``figures`` (and ``arguments``) a number argument is one of them or its
    schema's default, an optional one without such a value is left out, and a tool with a required one cannot be
    called, nor where ``figures`` is empty one that computes on figures alone (``computes_on_figures``); a figure
    with a unit goes only to an argument that takes that unit or names none (``figures.argument_units``). With
    ``units``, an enum value that names a length of time ("years") is allowed only where ``units`` holds it, or as
    the default (agent/figures.py); ``refused``, by tool and argument, the figures that argument may not take. Without
    ``answer`` the step must call a tool (where one can be called)."""
    specs = list(tools.specs() if hasattr(tools, "specs") else tools)
    rules: dict[str, str] = {}
    calls = []
    for i, spec in enumerate(specs):
        if arguments and figures is not None and not figures and computes_on_figures(spec):
            continue
        args = (_object_rule(spec.get("parameters") or {}, f"t{i}", rules, figures, units,
                             (refused or {}).get(spec["name"])) if arguments else "object")
        if args is None:
            continue
        calls.append(f'"{_literal(json.dumps(spec["name"]))}, \\"arguments\\": " {args}')
    if calls:
        rules["action"] = f'"{_literal(ACTION)} {{\\"name\\": " ({" | ".join(calls)}) "}}"'
    if quotes:
        first = "lead" if lead else "quote"
        more = f' (" " quote){{0,{max_quotes - 1}}}' if max_quotes > 1 else ""
        rules["answer"] = f'"{_literal(ANSWER)} " {first}{more}'
        rules["quote"] = " | ".join(f'"{_literal(q)}"' for q in quotes)
        if lead:
            rules["lead"] = " | ".join(f'"{_literal(q)}"' for q in lead)
    else:
        rules["answer"] = f'"{_literal(ANSWER)} " [^ \\n] [^\\n]* ("\\n" answer-line)*'
        rules["answer-line"] = _line_not_opening(_STEP_OPENERS, "al", rules)
    actions = "action" if max_actions <= 1 else f'action ("\\n" action){{0,{max_actions - 1}}}'
    body = (f"({actions} | answer)" if answer else actions) if calls else "answer"
    rules["root"] = f'{_rest_of_thought(prefix)} "\\n" {body}'
    rules["thought"] = "[^\\n]*"  # a rule of its own, so that llguidance reads it as one lexeme (10x faster)
    out = [f"root ::= {rules.pop('root')}"] + [f"{name} ::= {rule}" for name, rule in rules.items()]
    return "\n".join(out) + "\n" + _COMMON.strip() + "\n"


def _rest_of_thought(prefix: str) -> str:
    """What remains of the thought line after ``prefix``: the rest of "Thought:" and then any line."""
    if "\n" in prefix:
        raise ValueError(f"a prefix must end inside the thought line, not {prefix!r}")
    if prefix.startswith(THOUGHT):
        return "thought"
    if THOUGHT.startswith(prefix):
        rest = THOUGHT[len(prefix):]
        return f'"{_literal(rest)}" thought'
    raise ValueError(f"a prefix must start the thought line ({THOUGHT!r}), not {prefix!r}")


def _literal(text: str) -> str:
    """``text`` escaped for the inside of a GBNF string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value_rule(schema: dict[str, Any], name: str, rules: dict[str, str], figures: Sequence[Figure] | None = None,
                units: Collection[str] | None = None) -> str | None:
    """A GBNF expression for a JSON value that ``schema`` allows (its type, enum, items, properties); with
    ``figures``, a number is one of them; with ``units``, an enum's lengths of time are those; None where no value
    is allowed."""
    if "const" in schema:
        return f'"{_literal(json.dumps(schema["const"]))}"'
    if "enum" in schema:
        return _either([f'"{_literal(json.dumps(v))}"' for v in schema["enum"] if _unit_allowed(v, schema, units)])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _either([_value_rule(s, f"{name}-{k}", rules, figures, units) for k, s in enumerate(schema[key])])
    kind = schema.get("type")
    if isinstance(kind, list):
        return _either([_value_rule({**schema, "type": k}, f"{name}-{k}", rules, figures, units) for k in kind])
    if kind == "array":
        item = _value_rule(schema.get("items") or {}, f"{name}-item", rules, figures, units)
        rules[name] = f'"[" ({item} (", " {item})*)? "]"' if item else '"[]"'
        return name
    if kind == "object":
        return _object_rule(schema, name, rules, figures, units)
    if kind in ("integer", "number") and figures is not None:
        return _figure_rule(schema, kind, figures)
    return {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
            "null": "null"}.get(kind, "value")


def _unit_allowed(value: Any, schema: dict[str, Any], units: Collection[str] | None) -> bool:
    """Whether an enum value may be written: one that names no length of time, the default, or one of ``units``."""
    unit = unit_choice(value)
    return units is None or unit is None or unit in units or value == schema.get("default")


def _either(options: list[str | None]) -> str | None:
    """The alternatives that can be written, or None where none can."""
    allowed = [o for o in options if o]
    return "(" + " | ".join(allowed) + ")" if allowed else None


def _figure_rule(schema: dict[str, Any], kind: str, figures: Sequence[Figure]) -> str | None:
    """The figures a number of ``schema`` may take (its default too), within its bounds; None where none fits."""
    default = schema.get("default")
    stated_default = isinstance(default, int | float) and not isinstance(default, bool)
    candidates = [*figure_values(figures), *([default] if stated_default else [])]
    low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    allowed = sorted({_json_number(f) for f in candidates
                      if low <= f <= high and (kind == "number" or float(f).is_integer())})
    return _either([f'"{f}"' for f in allowed])


def _json_number(value: float) -> str:
    """``value`` as json.dumps writes an integer and a short decimal: 30, 2.5 (never 30.0)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _object_rule(schema: dict[str, Any], name: str, rules: dict[str, str], figures: Sequence[Figure] | None = None,
                 units: Collection[str] | None = None,
                 refused: Mapping[str, Collection[float]] | None = None) -> str | None:
    """A rule for an object of ``schema``'s properties: each at most once, the required ones all present.

    Up to ANY_ORDER_MAX properties in any order (a rule per set of properties written: ``name-s<bits>``),
    more in the schema's order; an object without properties is any object. A property no value of which
    can be written is left out, and where it is required the object cannot be written (None). ``refused``: the
    figures each property may not take."""
    properties = schema.get("properties")
    if not properties:
        return "object"
    values = {key: _value_rule(properties[key], f"{name}-a{k}", rules,
                               _taken(figures, key, properties[key], (refused or {}).get(key, ())), units)
              for k, key in enumerate(properties)}
    required = {k for k in schema.get("required", []) if k in properties}
    if any(values[key] is None for key in required):
        return None
    keys = [key for key in properties if values[key] is not None]
    pairs = []
    for key in keys:
        pairs.append(f'"{_literal(json.dumps(key))}: " {values[key]}')
    must = sum(1 << k for k, key in enumerate(keys) if key in required)
    any_order = len(keys) <= ANY_ORDER_MAX

    def state(written: int, first: bool) -> str:
        """The rule for the rest of the object once the properties in ``written`` are written."""
        rule = f"{name}-s{written}"
        if rule in rules:
            return rule
        rules[rule] = ""  # reserved while its alternatives are built
        later = range(len(keys)) if any_order else range(written.bit_length(), len(keys))
        options = []
        for k in later:
            if written >> k & 1:
                continue
            if not any_order and must & ~written & ((1 << k) - 1):
                break  # in schema order, a required property cannot be skipped
            comma = "" if first else '", " '
            options.append(f"{comma}{pairs[k]} {state(written | 1 << k, False)}")
        if must & ~written == 0:
            options.append('"}"')
        rules[rule] = " | ".join(options)
        return rule

    return f'"{{" {state(0, True)}'


def _taken(figures: Sequence[Figure] | None, key: str, schema: dict[str, Any],
           refused: Collection[float] = ()) -> list[Figure] | None:
    """The figures argument ``key`` of ``schema`` may take: those of its unit and those stated bare, but ``refused``."""
    if figures is None:
        return None
    units = argument_units(key, schema)
    return [f for f in figures if takes(f, units) and f.value not in refused]


def _line_not_opening(words: Iterable[str], name: str, rules: dict[str, str]) -> str:
    """A GBNF expression for a line (up to, not including, its newline) that does not start with any of
    ``words``: a trie over the words, each node allowing any character but its way on to a whole word."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a whole word ends here

    def node_rule(node: dict[str, Any], path: str) -> str:
        options = []
        children = sorted(ch for ch in node if ch)
        excluded = "".join(_class_char(ch) for ch in children)
        options.append(f"[^\\n{excluded}] [^\\n]*")
        options.append('""')  # the line may end here
        for ch in children:
            child = node[ch]
            if "" in child:
                continue  # a whole marker: refused
            sub = f"{name}-{len(rules)}"
            rules[sub] = ""
            rules[sub] = node_rule(child, path + ch)
            options.append(f'"{_literal(ch)}" {sub}')
        return " | ".join(options)

    return node_rule(trie, "")


def _class_char(ch: str) -> str:
    """``ch`` escaped for the inside of a GBNF character class."""
    return "\\" + ch if ch in "]\\^-[" else ch
