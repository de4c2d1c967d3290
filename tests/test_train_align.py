"""Character alignment of the student's and the teacher's tokens (train/align.py), with the real
SmolLM2 (byte-level BPE, 49k) and Gemma 3 (SentencePiece-style, 262k) tokenizers."""

from __future__ import annotations

import pytest

from agentdistill.errors import UserError
from agentdistill.models.registry import load_tokenizer
from agentdistill.models.templates import tokenize_for_training
from agentdistill.train.align import NO_MATCH, align, match_rate, tokenize_trace

MESSAGES = [
    {"role": "system", "content": "You answer questions on UAE labour law. Tools: calculate_gratuity, get_article."},
    {"role": "user", "content": "Ahmed Al-Mansouri (أحمد المنصوري) earned AED 12,500/month for 7.5 years. Gratuity?"},
    {
        "role": "assistant",
        "thought": "Gratuity for 7.5 years  at AED 12,500; the name is أحمد.",
        "tool_calls": [
            {"name": "calculate_gratuity", "arguments": {"monthly_basic_salary": 12500, "years_of_service": 7.5}}
        ],
    },
    {"role": "tool", "name": "calculate_gratuity", "content": '{"gratuity_aed": 70729.17, "days": 157.5}'},
    {
        "role": "assistant",
        "thought": "The tool gives AED 70,729.17.",
        "content": "About AED 70,729.17 for أحمد المنصوري (Federal Decree-Law 33/2021, Art. 51).",
    },
]


@pytest.fixture(scope="module")
def tokenizers():
    return load_tokenizer("smollm2-135m"), load_tokenizer("gemma3-270m")


def _piece(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id])


def test_ids_and_mask_are_those_sft_trains_on(tokenizers):
    for tok in tokenizers:
        ours = tokenize_trace(tok, MESSAGES)
        sft = tokenize_for_training(tok, MESSAGES, max_length=10_000)
        assert ours.input_ids == sft["input_ids"]
        assert ours.assistant_masks == sft["assistant_masks"]
        cut = tokenize_trace(tok, MESSAGES, max_length=40)
        assert cut.input_ids == sft["input_ids"][:40] and len(cut.keys) == 40


def test_matched_tokens_start_at_the_same_text(tokenizers):
    """Each matched pair decodes to strings of which one extends the other, and numbers, Arabic and JSON
    are covered: the pair conditions on the same prefix. Positional pairing breaks this."""
    s_tok, t_tok = tokenizers
    student, teacher = tokenize_trace(s_tok, MESSAGES), tokenize_trace(t_tok, MESSAGES)
    matches = align(student, teacher)
    pairs = [(i, j) for i, j in enumerate(matches) if j != NO_MATCH]
    assert match_rate(student, matches) > 0.8
    checked = 0
    for i, j in pairs:
        a, b = _piece(s_tok, student.input_ids[i]), _piece(t_tok, teacher.input_ids[j])
        if "\ufffd" in a or "\ufffd" in b or a in ("<|im_end|>",):  # byte pieces of a split character; end of turn
            continue
        assert a.startswith(b) or b.startswith(a), (i, j, a, b)
        checked += 1
    assert checked > 0.7 * len(pairs)
    matched = [_piece(s_tok, student.input_ids[i]) for i, _ in pairs]
    assert sum(p.strip().isdigit() for p in matched) >= 10  # digits of 12,500 / 70,729.17 / 33/2021
    assert any('":' in p for p in matched) and any("{" in p for p in matched)  # the JSON action
    assert any("أ" in _piece(t_tok, teacher.input_ids[j]) for _, j in pairs)  # Arabic names are matched

    # the seed's rule: the n-th trained token of one with the n-th of the other
    s_pos, t_pos = student.assistant_positions(), teacher.assistant_positions()
    drifted = sum(
        not (a.startswith(b) or b.startswith(a))
        for a, b in (
            (_piece(s_tok, student.input_ids[i]), _piece(t_tok, teacher.input_ids[j]))
            for i, j in zip(s_pos, t_pos, strict=False)
        )
    )
    assert drifted > 10


def test_end_of_turn_tokens_are_matched_to_each_other(tokenizers):
    s_tok, t_tok = tokenizers
    student, teacher = tokenize_trace(s_tok, MESSAGES), tokenize_trace(t_tok, MESSAGES)
    matches = align(student, teacher)
    im_end = s_tok.convert_tokens_to_ids("<|im_end|>")
    end_of_turn = t_tok.convert_tokens_to_ids("<end_of_turn>")
    trained_ends = [i for i, tid in enumerate(student.input_ids) if tid == im_end and student.assistant_masks[i]]
    assert len(trained_ends) == 2  # one per assistant step
    for i in trained_ends:
        assert teacher.input_ids[matches[i]] == end_of_turn


def test_untrained_and_unstartable_tokens_get_no_teacher(tokenizers):
    s_tok, t_tok = tokenizers
    student, teacher = tokenize_trace(s_tok, MESSAGES), tokenize_trace(t_tok, MESSAGES)
    matches = align(student, teacher)
    for i, j in enumerate(matches):
        if not student.assistant_masks[i]:
            assert j == NO_MATCH  # system, user and observation tokens are never distilled
        if j != NO_MATCH:
            assert teacher.assistant_masks[j] == 1
    # "Thought" is one Gemma token but "Th" + "ought" for SmolLM2: "ought" starts inside it
    first = student.assistant_positions()[:2]
    assert [_piece(s_tok, student.input_ids[i]) for i in first] == ["Th", "ought"]
    assert matches[first[0]] != NO_MATCH and matches[first[1]] == NO_MATCH


def test_same_tokenizer_aligns_every_trained_token_to_itself(tokenizers):
    s_tok, _ = tokenizers
    student = tokenize_trace(s_tok, MESSAGES)
    matches = align(student, student)
    trained = student.assistant_positions()
    starts_inside = [i for i in trained if student.keys[i] is None]  # byte pieces of split Arabic letters
    assert all(matches[i] == i for i in trained if i not in starts_inside)
    assert match_rate(student, matches) > 0.9


def test_a_template_that_rewrites_assistant_text_is_refused(tokenizers):
    s_tok, _ = tokenizers
    tok = load_tokenizer("smollm2-135m")
    tok.chat_template = "{% for m in messages %}{{ m['content'] | upper }}<|im_end|>{% endfor %}"
    with pytest.raises(UserError, match="verbatim"):
        tokenize_trace(tok, MESSAGES)
    assert s_tok.chat_template != tok.chat_template
