"""Which teacher token stands for which student token, by characters rather than by position.

Cross-tokenizer distillation compares, for each student response token, the student's next-token
distribution with the teacher's. The two tokenizers cut the same text differently ("12,000" is five
SmolLM2 tokens and five Gemma tokens, but "Al-Mansouri" or an Arabic name is not cut alike), so the
seed's alignment by position (the i-th response token of one with the i-th of the other) drifts
after the first difference. Here both models tokenize the same canonical trace with their own chat
template; the assistant text (the ReAct wire text of each step, then its end-of-turn token) is the
same string in both renderings, so characters give a common coordinate.

Rule: a token *starts* where the previous token ends (fast tokenizers' offset mappings; taking the
previous end rather than the token's own start also gives a leading space to the token that carries
it, and gives the second byte-piece of a split character an empty span). Student token i is matched
to the teacher token that starts at the same character of the same assistant turn, if there is one.
Both distributions then condition on exactly the same text and predict what comes next from that
character on, which is what ULD compares. Consequences:
- a student token that spans several teacher tokens ("▁{" + "\"" vs "Ġ{\"") is matched to the first
  of them: the one that starts with it;
- student tokens that start inside a longer teacher token (the second and later pieces of a word
  the teacher keeps whole) and byte-pieces of a split character have no teacher distribution
  conditioned on their prefix: they get no ULD term (cross-entropy still applies to them);
- the end-of-turn token (``<|im_end|>`` vs ``<end_of_turn>``) starts right after the wire text on
  both sides, so the two are matched: the student learns when to stop from the teacher too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentdistill.errors import UserError

NO_MATCH = -1


@dataclass
class TokenizedTrace:
    """One trace as one model sees it."""

    input_ids: list[int]
    assistant_masks: list[int]  # 1 on assistant text and its end-of-turn token: what is trained
    keys: list[tuple[int, int] | None]  # (assistant turn, character where the token starts in it), or None

    def assistant_positions(self) -> list[int]:
        return [i for i, m in enumerate(self.assistant_masks) if m]


def tokenize_trace(tokenizer: Any, messages: list[dict[str, Any]], max_length: int | None = None) -> TokenizedTrace:
    """Tokenize a canonical trace with the tokenizer's chat template, keeping character offsets.

    The ids and mask equal ``models.templates.tokenize_for_training`` (the same rendered text, tokenized
    without added special tokens; the mask marks tokens that overlap an assistant turn's text or its
    end-of-turn token), cut to ``max_length`` tokens when given.
    """
    from agentdistill.models.templates import end_of_turn, to_chat_messages

    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} is not a fast tokenizer: cross-tokenizer "
            "alignment needs its character offsets.",
            hint="Load it with agentdistill.models.registry.load_tokenizer, which gives a fast tokenizer.",
        )
    chat = to_chat_messages(messages)
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    eot = end_of_turn(tokenizer)
    turns = []  # (start of the wire text, end of the turn's end-of-turn token)
    pos = 0
    for m in chat:
        if m["role"] != "assistant":
            continue
        block = m["content"] + eot
        start = text.find(block, pos)
        if start < 0:
            raise UserError(
                f"the chat template of {getattr(tokenizer, 'name_or_path', '?')!r} does not render an assistant "
                "step verbatim followed by its end-of-turn token, so tokens cannot be aligned by characters.",
                hint="Use the agentdistill chat templates (models.registry.load_tokenizer installs them).",
            )
        turns.append((start, start + len(block)))
        pos = start + len(block)

    mask = [0] * len(ids)
    keys: list[tuple[int, int] | None] = [None] * len(ids)
    prev_end, turn = 0, 0
    for i, (s, e) in enumerate(offsets):
        start = prev_end  # the token covers the text from where the previous one stopped
        prev_end = max(prev_end, e)
        while turn < len(turns) and turns[turn][1] <= s:
            turn += 1
        if turn == len(turns):
            continue
        a, b = turns[turn]
        if s < b and e > a:  # overlaps the turn: trained, as return_assistant_tokens_mask marks it
            mask[i] = 1
            if a <= start < e:  # a non-empty span that starts inside the turn: alignable
                keys[i] = (turn, start - a)
    if max_length is not None:
        ids, mask, keys = ids[:max_length], mask[:max_length], keys[:max_length]
    return TokenizedTrace(ids, mask, keys)


def align(student: TokenizedTrace, teacher: TokenizedTrace) -> list[int]:
    """For each student token, the index of the teacher token starting at the same character of the
    same assistant turn, or NO_MATCH (-1); only trained (masked) student tokens are matched."""
    first: dict[tuple[int, int], int] = {}
    for j, key in enumerate(teacher.keys):
        if key is not None and teacher.assistant_masks[j]:
            first.setdefault(key, j)
    return [
        first.get(key, NO_MATCH) if key is not None and m else NO_MATCH
        for key, m in zip(student.keys, student.assistant_masks, strict=True)
    ]


def match_rate(student: TokenizedTrace, matches: list[int]) -> float:
    """Share of the student's trained tokens that have a teacher token."""
    trained = sum(student.assistant_masks)
    return sum(m != NO_MATCH for m in matches) / max(1, trained)
