"""Chat templates per model family, and the assistant-only training mask they produce.

A canonical trace (docs/design.md) becomes chat messages with four roles: system, user, assistant and
observation. Each assistant step is rendered in the ReAct wire format by ``agent.wire`` (``Thought:
...`` then ``Action: {...}`` or ``Answer: ...``); a tool result becomes ``Observation: ...`` in its
own turn. The Jinja templates in ``templates/`` wrap exactly the assistant text plus its
end-of-turn token in ``{% generation %}``, so transformers' ``return_assistant_tokens_mask`` marks
the tokens the student is trained on, and nothing of system, user or observation text:

    loss = sum_t mask_t * -log p(x_t | x_<t) / sum_t mask_t

An all-zero mask would make that 0/0 (the example teaches nothing, silently), so training refuses it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from agentdistill.agent.wire import render_message
from agentdistill.errors import UserError
from agentdistill.records import check_message

FAMILIES = ("chatml", "gemma3", "llama3")
END_OF_TURN = {"chatml": "<|im_end|>", "gemma3": "<end_of_turn>", "llama3": "<|eot_id|>"}
# A token that only that family's vocabulary has; checked in this order (see family_from_text).
FAMILY_MARKERS = (("gemma3", "<start_of_turn>"), ("llama3", "<|start_header_id|>"), ("chatml", "<|im_start|>"))


class EmptyAssistantMaskError(UserError):
    """A training example whose assistant mask selects no token: it would teach nothing."""

    def __init__(self, example_id: str):
        super().__init__(
            f"training example {example_id!r} has an empty assistant mask: none of its tokens would be trained.",
            hint="The trace has no assistant step, or max_length cut all of them off; "
            "raise sft.max_length or drop the example (rerun `agentdistill traces`).",
        )
        self.example_id = example_id


@cache
def template_text(family: str) -> str:
    """The Jinja chat template of ``family`` (chatml, gemma3, llama3)."""
    if family not in FAMILIES:
        raise UserError(f"unknown chat family {family!r}.", hint=f"Use one of: {', '.join(FAMILIES)}.")
    return files("agentdistill.models").joinpath("templates", f"{family}.jinja").read_text(encoding="utf-8")


def family_from_text(text: str) -> str | None:
    """The family whose marker token occurs in ``text`` (a template or tokenizer file), if any."""
    for family, marker in FAMILY_MARKERS:
        if marker in text:
            return family
    return None


def family_of(tokenizer: Any) -> str:
    """The chat family of a tokenizer: from its installed template, else from its vocabulary."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    family = family_from_text(template)
    if family is not None:
        return family
    for family, marker in FAMILY_MARKERS:
        tid = tokenizer.convert_tokens_to_ids(marker)
        if tid is not None and tid != tokenizer.unk_token_id:
            return family
    raise UserError(
        f"cannot tell the chat family of tokenizer {getattr(tokenizer, 'name_or_path', '?')!r}.",
        hint="agentdistill supports ChatML (SmolLM2, Qwen), Gemma 3 and Llama 3 tokenizers; "
        "load it with agentdistill.models.registry.load_tokenizer.",
    )


def end_of_turn(tokenizer: Any) -> str:
    """The token that ends an assistant turn: ``<|im_end|>``, ``<end_of_turn>`` or ``<|eot_id|>``."""
    return END_OF_TURN[family_of(tokenizer)]


def to_chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Canonical messages -> ``[{"role", "content"}]`` with roles system|user|assistant|observation.

    Messages already in that chat form pass through, so converting twice changes nothing.
    """
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "observation" or (role == "assistant" and "thought" not in m and isinstance(m.get("content"), str)):
            out.append({"role": role, "content": m["content"]})
            continue
        try:
            check_message(m, where=f"messages[{i}]")
        except ValueError as e:
            raise UserError(f"not a canonical message: {e}", hint="See docs/design.md, 'Canonical data'.") from e
        out.append({"role": "observation" if role == "tool" else role, "content": render_message(m)})
    return out


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """The prompt text for ``messages`` (ending with the assistant header when asked).

    The text already holds the template's BOS where the family has one (Gemma, Llama 3): tokenize it
    with ``add_special_tokens=False`` so that it is not doubled.
    """
    return tokenizer.apply_chat_template(
        to_chat_messages(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


# Tokens; a shorter shared prompt prefix saves less than its extra forward pass (training) or cache copy
# (generation) costs.
MIN_SHARED_PREFIX = 32


def shared_prefix_len(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own to feed the model."""
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def tokenize_for_training(tokenizer: Any, messages: list[dict[str, Any]], max_length: int) -> dict[str, list[int]]:
    """Token ids of a whole trace and its assistant mask (1 = trained on), cut to ``max_length``.

    The mask comes from the template's ``{% generation %}`` blocks: each assistant turn's
    Thought/Action/Answer text and its end-of-turn token. Cutting keeps the start of the trace, so
    the prompt a step was conditioned on is never lost while the step is kept.
    """
    enc = tokenizer.apply_chat_template(
        to_chat_messages(messages), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = list(enc["input_ids"])[:max_length]
    mask = list(enc["assistant_masks"])[:max_length]
    return {"input_ids": ids, "assistant_masks": mask}


def check_assistant_mask(mask: list[int], example_id: str) -> None:
    """Raise EmptyAssistantMaskError when ``mask`` selects no token."""
    if not any(mask):
        raise EmptyAssistantMaskError(example_id)
