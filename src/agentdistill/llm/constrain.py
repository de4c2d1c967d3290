"""Constrained decoding of tool names: once a reply opens an action object, only a registered tool's
name can follow.

A small student that has learned the wire format still slips on the one word that matters most: it
writes ``Action: {"name": "calculate_overtime_pay"`` for a tool called ``overtime_pay``. Everything
else about such a step may be right, and a tool name is a choice among a handful of strings, so the
local backend masks the logits while the text after ``Action: {`` is a prefix of
``"name": "<registered tool>"``: the model still picks the tool, by its own probabilities, but only
among tools that exist. Outside that span (thoughts, arguments, answers) nothing is constrained, and a
reply that leaves the expected shape (another key first, a different spacing) is left alone: the
parser and the runtime's format-error feedback handle it as before.

The mask for a given partial name is computed once from the token strings and cached, so the cost
per generated token is one decode of a short tail per row.
"""

from __future__ import annotations

import re
from typing import Any

# the action object as the wire format renders it (json.dumps spacing), and the compact variant
_NAME_KEYS = ('"name": "', '"name":"')
_ACTION_OPEN = re.compile(r"Action:[ \t]*\{[ \t]*")
# enough to hold 'Action: {"name": "' and a long tool name even when sampled one character per token
_TAIL_TOKENS = 64


class ToolNameConstraint:
    """The masks that keep action names to ``tool_names``, cached for one tokenizer and tool set;
    ``processor(prompt_len, prefixes)`` gives the logits processor for one generate() call."""

    def __init__(self, tokenizer: Any, tool_names: list[str]):
        if not tool_names:
            raise ValueError("a tool-name constraint needs at least one tool name")
        self.tokenizer = tokenizer
        self.targets = sorted({f'{key}{name}"' for key in _NAME_KEYS for name in tool_names})
        self._candidates = self._candidate_tokens()
        self._masks: dict[tuple[str, int], Any] = {}

    def _candidate_tokens(self) -> list[tuple[int, str]]:
        """Tokens that can appear inside a target: a piece of one, or a target's tail and what follows
        its closing quote. Every mask is built from these (a few hundred) instead of the whole vocabulary."""
        out = []
        for token_id, s in enumerate(self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])):
            if not s:
                continue
            inside = any(s in t for t in self.targets)
            crossing = not inside and any(s[: q + 1] and t.endswith(s[: q + 1])
                                          for q, ch in enumerate(s) if ch == '"' for t in self.targets)
            if inside or crossing:
                out.append((token_id, s))
        return out

    def partial_name(self, generated_text: str) -> str | None:
        """The text after the last open action object while it is still a strict prefix of a target
        (``'"name": "ove'``); None when no action is open, the name is complete, or the reply left the shape."""
        last = next(reversed(list(_ACTION_OPEN.finditer(generated_text))), None)
        if last is None:
            return None
        partial = generated_text[last.end():]
        if any(t.startswith(partial) and t != partial for t in self.targets):
            return partial
        return None

    def allowed(self, partial: str) -> list[int]:
        """Token ids whose text keeps ``partial`` on the way to a target, or completes one (a token may run
        past the closing quote, e.g. '",')."""
        out = []
        for token_id, s in self._candidates:
            extended = partial + s
            if any(t.startswith(extended) or extended.startswith(t) for t in self.targets):
                out.append(token_id)
        return out

    def _mask(self, partial: str, width: int, device: Any) -> Any:
        import torch

        key = (partial, width)
        mask = self._masks.get(key)
        if mask is None:
            ids = [i for i in self.allowed(partial) if i < width]
            mask = torch.full((width,), float("-inf") if ids else 0.0)  # no way on: leave the row alone
            mask[ids] = 0.0
            self._masks[key] = mask
        return mask.to(device)

    def processor(self, prompt_len: int, prefixes: list[str]) -> _ToolNameProcessor:
        """A logits processor for a generate() call whose generated tokens start at ``prompt_len``;
        ``prefixes[row]`` is the text prefilled before row ``row``'s generated tokens."""
        return _ToolNameProcessor(self, prompt_len, prefixes)

    def apply(self, generated: Any, scores: Any, prefixes: list[str]) -> Any:
        """Mask ``scores`` of every row whose text (prefix + ``generated`` tokens) ends inside an action's name."""
        tails = generated[:, -_TAIL_TOKENS:].tolist()
        for row, tail in enumerate(tails):
            text = prefixes[row][-200:] + self.tokenizer.decode(tail, skip_special_tokens=True)
            partial = self.partial_name(text)
            if partial is not None:
                scores[row] = scores[row] + self._mask(partial, scores.shape[-1], scores.device)
        return scores


class _ToolNameProcessor:
    """What generate() calls at every step (the LogitsProcessor signature)."""

    def __init__(self, constraint: ToolNameConstraint, prompt_len: int, prefixes: list[str]):
        self.constraint = constraint
        self.prompt_len = prompt_len
        self.prefixes = prefixes

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self.constraint.apply(input_ids[:, self.prompt_len:], scores, self.prefixes)
