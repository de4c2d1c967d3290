"""Whether a tool call has the arguments a question fixes: one definition for the trace filter, the
question writer's self-check and the evaluation, so a trace is kept exactly when it would score.

Values compare as a grader means them (BFCL's checker): numbers within 1e-6 relative, so 5 == 5.0 ==
"5" == "5.0"; strings lower-cased with spaces and ``,./-_*^`` removed, so "Dubai Marina" ==
"dubai-marina". An optional argument the question does not fix must stay at its default: the question
did not ask for it, and a value there changes what the tool computes (an "8 hours of overtime" question
answered with ``"period": "night"`` is paid at the wrong rate). A call that omits an optional argument
has its default. Required arguments the question does not fix may take any value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

_BFCL_STRIP = re.compile(r"[\s,./\-_*^]")


def values_match(expected: Any, got: Any) -> bool:
    """Argument equality as a grader means it: 5 == 5.0 == "5", "Dubai Marina" == "dubai-marina"."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got or (isinstance(got, str) and got.lower() == str(expected).lower())
    num_e, num_g = _as_number(expected), _as_number(got)
    if num_e is not None and num_g is not None:
        return math.isclose(num_e, num_g, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(got, str):
        return _BFCL_STRIP.sub("", expected.lower()) == _BFCL_STRIP.sub("", got.lower())
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(values_match(e, g) for e, g in zip(expected, got, strict=True))
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(values_match(v, got[k]) for k, v in expected.items())
    return expected == got


def _as_number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x)
    if isinstance(x, str):
        try:
            return float(x.replace(",", "").strip())
        except ValueError:
            return None
    return None


def optional_defaults(specs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tool, its optional arguments and their defaults (None where the schema names none)."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        params = spec.get("parameters") or {}
        required = set(params.get("required") or [])
        out[spec["name"]] = {name: schema.get("default") for name, schema in (params.get("properties") or {}).items()
                             if name not in required}
    return out


def arguments_match(fixed: dict[str, dict[str, Any]], calls: list[dict[str, Any]],
                    defaults: dict[str, dict[str, Any]] | None = None) -> bool:
    """Every tool in ``fixed`` has a call agreeing on every fixed argument, with its unfixed optional
    arguments at their defaults (``defaults`` from ``optional_defaults``; without it, unfixed
    arguments are free)."""
    for tool, want in fixed.items():
        tool_defaults = (defaults or {}).get(tool, {})
        expected = {**tool_defaults, **want}
        candidates = [{**tool_defaults, **(c.get("arguments") or {})} for c in calls if c["name"] == tool]
        if not any(all(k in args and values_match(v, args[k]) for k, v in expected.items()) for args in candidates):
            return False
    return True
