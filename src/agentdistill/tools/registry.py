"""The set of tools an agent may call, and the one place where calls are checked and run.

``call`` never raises. An unknown tool, a missing or mistyped argument, an argument too long to read, a
tool that raises or one that runs past its timeout each become a ``ToolResult(ok=False, content=...)``
whose text tells the model what was wrong and how to fix it: the agent reads it as an observation and
can recover, and a recorded trace shows the recovery instead of a crash.

A tool past its timeout is stopped, not only abandoned: the registry raises ``ToolTimeout`` inside the
tool's thread, which Python delivers at the thread's next bytecode, so a loop in Python code ends there.
A single long call into C (a regex, a huge integer's arithmetic) cannot be interrupted that way and runs
to its end; tools keep those bounded by limiting their inputs (tools/general.py).
"""

from __future__ import annotations

import ctypes
import difflib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from agentdistill.tools.spec import ASKED, Tool


@dataclass
class ToolResult:
    ok: bool
    content: str


class ToolRegistry:
    """Tools by name, with JSON-Schema argument validation, a timeout and an observation size cap."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = (), timeout_s: float = 10.0,
                 max_chars: int = 1500, max_argument_chars: int = 4000):
        self.timeout_s = timeout_s
        self.max_chars = max_chars  # a 135M student has a ~2k-token budget: long observations crowd it out
        # A string argument longer than this is refused before the schema check or the tool reads it: no
        # question needs one, and a tool should not have to defend every parser it uses against megabytes.
        self.max_argument_chars = max_argument_chars
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool | Callable[..., Any]) -> Tool:
        t = t if isinstance(t, Tool) else Tool.from_function(t)
        if t.name in self._tools:
            raise ValueError(f"two tools are named {t.name!r}; tool names must be unique")
        Draft202012Validator.check_schema(t.parameters)
        self._tools[t.name] = t
        self._validators[t.name] = Draft202012Validator(t.parameters)
        return t

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self._tools.values()]

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def relevant(self, text: str, floor: float) -> list[str]:
        """The tools whose data is at least ``floor`` relevant to ``text`` (``Tool.relevance``); a tool that cannot
        tell (an index not yet built) is not among them."""
        names = []
        for tool in self._tools.values():
            if tool.relevance is not None:
                try:
                    if tool.relevance(text) >= floor:
                        names.append(tool.name)
                except Exception:  # noqa: BLE001 - a tool that cannot tell leaves the decision to the model
                    continue
        return names

    def validate(self, name: str, arguments: Any) -> str | None:
        """None when the call is well-formed, else a message for the model saying what to change."""
        if name not in self._tools:
            close = difflib.get_close_matches(name, self._tools, n=1)
            did_you_mean = f" Did you mean '{close[0]}'?" if close else ""
            return f"unknown tool '{name}'.{did_you_mean} Available tools: {', '.join(self._tools)}."
        if not isinstance(arguments, dict):
            return f"arguments for '{name}' must be a JSON object, got {type(arguments).__name__}."
        long = [k for k, v in arguments.items() if isinstance(v, str) and len(v) > self.max_argument_chars]
        if long:
            return (f"argument '{long[0]}' of '{name}' is {len(arguments[long[0]])} characters long; at most "
                    f"{self.max_argument_chars} are accepted.")
        errors = sorted(self._validators[name].iter_errors(arguments), key=lambda e: list(e.path))
        if not errors:
            return None
        problems = "; ".join(_explain(e) for e in errors[:3])
        return f"invalid arguments for '{name}': {problems}. Expected: {self._tools[name].signature()}."

    def call(self, name: str, arguments: Any, asked: str | None = None) -> ToolResult:
        """Validate and run one call; every failure becomes an explanatory observation. ``asked``, the user's
        latest message, reaches only tools that take it (``Tool.takes_asked``)."""
        problem = self.validate(name, arguments)
        if problem is not None:
            return ToolResult(False, f"Error: {problem}")
        tool = self._tools[name]
        timeout = tool.timeout_s if tool.timeout_s is not None else self.timeout_s
        if tool.takes_asked and asked:
            arguments = {**arguments, ASKED: asked}
        ok, value = _run_with_timeout(tool.fn, arguments, timeout)
        if not ok:
            if isinstance(value, TimeoutError):
                return ToolResult(False, f"Error: tool '{name}' did not finish within {timeout:g} s; "
                                         "try a simpler request or answer without it.")
            if isinstance(value, ValueError):  # tools raise ValueError for bad values the model can fix
                return ToolResult(False, f"Error: {name}: {value}")
            return ToolResult(False, f"Error: tool '{name}' failed ({type(value).__name__}: {value}).")
        return ToolResult(True, self._clip(_as_text(value)))

    def _clip(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return text[: self.max_chars].rstrip() + " ...[truncated]"


def is_error(observation: str) -> bool:
    """Whether a tool's observation reports a failure: ``ToolRegistry.call`` writes every one as "Error: ..."."""
    return observation.lstrip().startswith("Error")


def _explain(error: ValidationError) -> str:
    where = ".".join(map(str, error.path))
    if error.validator == "required":
        missing = [r for r in error.validator_value if r not in error.instance]
        return "missing required argument " + ", ".join(f"'{m}'" for m in missing)
    if error.validator == "additionalProperties":
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        return "unknown argument " + ", ".join(f"'{k}'" for k in extra)
    if error.validator == "type":
        return f"'{where}' must be of type {error.validator_value}, got {json.dumps(error.instance)}"
    if error.validator == "enum":
        return f"'{where}' must be one of {error.validator_value}, got {json.dumps(error.instance)}"
    return f"'{where}': {error.message}" if where else error.message


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


class ToolTimeout(Exception):
    """Raised inside a tool's thread when it runs past its timeout (see the module docstring)."""


def _run_with_timeout(fn: Callable[..., Any], arguments: dict[str, Any], timeout: float) -> tuple[bool, Any]:
    """Run ``fn(**arguments)`` in a daemon thread; (True, result) or (False, exception).

    Past ``timeout`` the thread is sent ``ToolTimeout`` and the agent moves on with a timeout observation at
    once; a tool that catches everything or sits in one C call may keep running, but being a daemon it does
    not keep the process alive.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            try:
                box["result"] = fn(**arguments)
            except BaseException as e:  # noqa: BLE001 - anything a tool raises is reported, not re-raised
                box["error"] = e
        except ToolTimeout:  # the stop arrived as the tool was finishing: nobody waits for it any more
            pass

    thread = threading.Thread(target=target, daemon=True, name="agentdistill-tool")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _raise_in(thread, ToolTimeout)
        return False, TimeoutError()
    if "error" in box:
        return False, box["error"]
    return True, box.get("result")


def _raise_in(thread: threading.Thread, exc: type[BaseException]) -> None:
    """Raise ``exc`` in ``thread`` at its next bytecode (CPython's PyThreadState_SetAsyncExc)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc))
