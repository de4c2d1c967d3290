"""One interface for every language model the agent runs on: a teacher server, a local student, the rule teacher.

A backend takes a batch of requests and returns, for each, ``n`` completions. Batching is part of
the interface because it is where the speed is: the local backend pads a batch into one forward
pass, the HTTP backend sends the batch concurrently, and the agent runtime advances many
conversations in lockstep so that every call is a batch.

Messages are canonical (docs/design.md): each backend renders them for its model; the agent runtime never
sees a chat template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentdistill.errors import UserError


@dataclass
class GenerationRequest:
    messages: list[dict[str, Any]]  # canonical messages; the reply is the next assistant turn
    stop: list[str] = field(default_factory=list)
    max_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    n: int = 1
    logprobs: bool = False
    # Text the assistant turn is forced to start with (e.g. "Thought: I should"). A backend that can
    # prefill continues after it and returns prefix + continuation; one that cannot ignores it.
    prefix: str = ""
    # GBNF grammar of the text generated after ``prefix`` (llm.grammar.step_grammar of the tools, given the
    # prefix): every token is decoded under it. A backend that cannot constrain decoding ignores it.
    grammar: str | None = None


@dataclass
class Completion:
    text: str  # the whole assistant turn (a prefilled prefix included), without the end-of-turn token
    finish_reason: str  # "stop" (end of turn or a stop sequence) | "length" | what the server said
    logprobs: list[float] | None = None  # per generated token, when requested
    # Wall time of the call that produced it: for a batched local model the batch's, for an HTTP backend its
    # own request's (queueing and retries included). None where the backend does not time its calls.
    elapsed_s: float | None = None


@runtime_checkable
class LLM(Protocol):
    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]: ...


class BackendError(UserError):
    """A model backend failed on a request after its retries (server errors, timeouts, a dead worker).

    The agent runtime ends the affected conversation with status "backend_error" and goes on with
    the others; configuration problems (unreachable server, unknown model) are plain UserErrors and
    stop the command, since no request could succeed.
    """


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop sequence. Returns (text, whether one was found)."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
