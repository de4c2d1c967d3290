"""Chat templates: the assistant mask covers exactly the assistant turns, for every family.

Tokenizers are real: SmolLM2's (chatml) and Gemma 3's (gemma3) from the bundled models. No Llama 3
tokenizer can be had offline, so the llama3 case uses SmolLM2's tokenizer with Llama 3's four
control tokens added as special tokens and the llama3 template installed.
"""

from __future__ import annotations

import pytest

from agentdistill.agent.wire import render_message
from agentdistill.models.registry import load_tokenizer
from agentdistill.models.templates import (
    END_OF_TURN,
    EmptyAssistantMaskError,
    check_assistant_mask,
    end_of_turn,
    render_prompt,
    template_text,
    to_chat_messages,
    tokenize_for_training,
)

SYSTEM = "You answer UAE labour-law questions. Tools: search_labour_law, calculate_gratuity."
USER = "How much gratuity after 6 years on a basic wage of 9000 AED?"
OBS1 = "Federal Decree-Law 33/2021, Art. 51: 21 days of basic wage per year for the first five years."
OBS2 = '{"gratuity_aed": 36000.0}'
TRACE = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": USER},
    {"role": "assistant", "thought": "I need the rule first.",
     "tool_calls": [{"name": "search_labour_law", "arguments": {"query": "end of service gratuity"}}]},
    {"role": "tool", "name": "search_labour_law", "content": OBS1},
    {"role": "assistant", "thought": "Now compute it.",
     "tool_calls": [{"name": "calculate_gratuity", "arguments": {"basic_wage": 9000, "years": 6}}]},
    {"role": "tool", "name": "calculate_gratuity", "content": OBS2},
    {"role": "assistant", "thought": "I have the amount.",
     "content": "About 36,000 AED (Federal Decree-Law 33/2021, Art. 51)."},
]
ASSISTANT_STEPS = [m for m in TRACE if m["role"] == "assistant"]
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


@pytest.fixture(scope="module")
def tokenizers(bundled_models):
    smol = load_tokenizer("smollm2-135m")
    gemma = load_tokenizer("gemma3-270m")
    llama = load_tokenizer("smollm2-135m")
    llama.add_tokens(LLAMA3_TOKENS, special_tokens=True)
    llama.chat_template = template_text("llama3")
    return {"chatml": smol, "gemma3": gemma, "llama3": llama}



def _spans(ids: list[int], mask: list[int], want: int) -> list[list[int]]:
    """Maximal runs of token ids whose mask value is ``want``."""
    runs: list[list[int]] = []
    prev = None
    for tok, m in zip(ids, mask, strict=True):
        if m == want:
            if prev != want:
                runs.append([])
            runs[-1].append(tok)
        prev = m
    return runs


@pytest.mark.parametrize("family", ["chatml", "gemma3", "llama3"])
def test_mask_covers_exactly_the_assistant_turns(tokenizers, family):
    tok = tokenizers[family]
    eot = END_OF_TURN[family]
    enc = tokenize_for_training(tok, TRACE, max_length=4096)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    assert len(ids) == len(mask)

    trained = [tok.decode(run) for run in _spans(ids, mask, 1)]
    assert trained == [render_message(m) + eot for m in ASSISTANT_STEPS]

    untrained = "".join(tok.decode(run) for run in _spans(ids, mask, 0))
    for text in (SYSTEM, USER, "Observation: " + OBS1, "Observation: " + OBS2):
        assert text in untrained
        assert all(text not in t for t in trained)
    # the role headers before each step are prompt, not target
    assert all(not t.startswith(("<|im_start|>", "<start_of_turn>", "<|start_header_id|>")) for t in trained)


@pytest.mark.parametrize("family", ["chatml", "gemma3", "llama3"])
def test_generation_prompt_matches_training_format(tokenizers, family):
    """What the agent is prompted with at step k, plus the step and its end token, is exactly a
    prefix of the rendered training trace: inference and training see the same format."""
    tok = tokenizers[family]
    full = render_prompt(tok, TRACE, add_generation_prompt=False)
    for k, m in enumerate(TRACE):
        if m["role"] == "assistant":
            prompt = render_prompt(tok, TRACE[:k], add_generation_prompt=True)
            assert full.startswith(prompt + render_message(m) + END_OF_TURN[family])


@pytest.mark.parametrize("family", ["chatml", "gemma3", "llama3"])
def test_end_of_turn_is_a_single_special_token(tokenizers, family):
    tok = tokenizers[family]
    assert end_of_turn(tok) == END_OF_TURN[family]
    ids = tok(END_OF_TURN[family], add_special_tokens=False)["input_ids"]
    assert len(ids) == 1


def test_gemma_folds_system_into_first_user_turn(tokenizers):
    text = render_prompt(tokenizers["gemma3"], TRACE[:2])
    assert text == f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n<start_of_turn>model\n"
    assert "system" not in text


def test_observation_turns_have_their_own_role(tokenizers):
    assert f"<|im_start|>observation\nObservation: {OBS1}<|im_end|>" in render_prompt(tokenizers["chatml"], TRACE)
    assert f"<start_of_turn>observation\nObservation: {OBS1}<end_of_turn>" in render_prompt(
        tokenizers["gemma3"], TRACE
    )
    assert f"<|start_header_id|>ipython<|end_header_id|>\n\nObservation: {OBS1}<|eot_id|>" in render_prompt(
        tokenizers["llama3"], TRACE
    )


def test_to_chat_messages_is_idempotent_and_renders_wire_format():
    chat = to_chat_messages(TRACE)
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "observation", "assistant", "observation",
                                         "assistant"]
    assert chat[2]["content"].startswith("Thought: I need the rule first.\nAction: {")
    assert chat[3]["content"] == "Observation: " + OBS1
    assert to_chat_messages(chat) == chat


def test_non_canonical_message_is_refused_with_its_index():
    from agentdistill.errors import UserError

    with pytest.raises(UserError, match=r"messages\[1\]"):
        to_chat_messages([{"role": "user", "content": "hi"}, {"role": "tool", "content": "no name"}])


def test_empty_mask_is_refused_naming_the_example(tokenizers):
    no_assistant = TRACE[:2]
    enc = tokenize_for_training(tokenizers["chatml"], no_assistant, max_length=4096)
    with pytest.raises(EmptyAssistantMaskError, match="trace-0007"):
        check_assistant_mask(enc["assistant_masks"], "trace-0007")


def test_truncation_that_cuts_every_assistant_token_is_refused(tokenizers):
    tok = tokenizers["gemma3"]
    n_prompt = len(tok(render_prompt(tok, TRACE[:2]), add_special_tokens=False)["input_ids"])
    enc = tokenize_for_training(tok, TRACE, max_length=n_prompt)
    assert len(enc["input_ids"]) == n_prompt
    with pytest.raises(EmptyAssistantMaskError):
        check_assistant_mask(enc["assistant_masks"], "long-one")
    # one more token and the first assistant token is back in the mask
    enc = tokenize_for_training(tok, TRACE, max_length=n_prompt + 1)
    assert enc["assistant_masks"][-1] == 1
    check_assistant_mask(enc["assistant_masks"], "long-one")
