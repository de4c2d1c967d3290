"""Training examples from a run's traces: token ids plus the mask of the tokens the student learns.

Each training trace (``traces.jsonl``, split "train", status "answered") is rendered with the model
family's chat template (system, user, assistant, observation turns) and tokenized once, here, by
``models.templates.tokenize_for_training``. The result goes to TRL's SFTTrainer as a pre-tokenized
dataset: ``input_ids`` and ``assistant_masks``, from which TRL builds ``labels`` (-100 outside the
assistant turns), so the loss is

    L = sum_t m_t * -log p(x_t | x_<t) / sum_t m_t,   m_t = 1 on assistant text and its end-of-turn token

Every example's mask is checked (``check_assistant_mask``): an example with nothing to learn stops
training with its id instead of silently diluting the batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.jsonl import read_records
from agentdistill.records import Trace
from agentdistill.run_layout import RunLayout

UNLIMITED = 1 << 30  # a max_length that cuts nothing, to measure each trace's full length


@dataclass
class DataStats:
    n_traces: int  # training traces in traces.jsonl
    n_examples: int  # examples kept (answered traces, after max_examples)
    n_truncated: int  # examples longer than max_length, cut at the end
    mean_tokens: float
    max_tokens: int  # before truncation
    trained_fraction: float  # share of tokens inside the assistant mask


def load_train_traces(run_dir: Path, max_examples: int | None = None, seed: int = 0,
                      first_turns_of_rest: bool = False,
                      multi_tool_first_turns: int = 0) -> tuple[list[Trace], int]:
    """The answered traces of the train split, in file order; also the number of train traces seen.

    With ``max_examples``, a seeded random sample of that many (kept in file order): the file is
    ordered by source passage, so its first N traces would cover only part of the corpus. With
    ``first_turns_of_rest`` the traces the sample leaves out follow it cut after their first assistant
    turn (see ``first_turn``). Last come ``multi_tool_first_turns`` copies of the first turn of every
    answered trace that calls more than one tool, sampled or not.
    """
    path = RunLayout(run_dir).traces
    if not path.exists():
        raise UserError(f"{path} does not exist: there is nothing to train on.",
                        hint=f"Run `agentdistill traces --run {run_dir}` first.")
    train = [t for t in read_records(path, Trace) if t.split == "train"]
    # A trace that did not end in an answer teaches the student to fail; synth filters them, but a
    # hand-made or older file may still hold some.
    answered = [t for t in train if t.outcome.status == "answered"]
    if not answered:
        raise UserError(f"{path} has no answered traces in the train split ({len(train)} train traces in all).",
                        hint="Check traces.stats.json for why traces were rejected, then rerun `agentdistill traces`.")
    if max_examples and max_examples < len(answered):
        keep = sorted(random.Random(seed).sample(range(len(answered)), max_examples))
        sample = [answered[i] for i in keep]
        if first_turns_of_rest:
            sample += [first_turn(answered[i]) for i in sorted(set(range(len(answered))) - set(keep))]
    else:
        sample = list(answered)
    sample += [first_turn(t, copy) for t in answered if len(set(called_tools(t))) > 1
               for copy in range(1, multi_tool_first_turns + 1)]
    return sample, len(train)


def called_tools(trace: Trace) -> list[str]:
    """The names of the tools ``trace`` calls, in order, repeats kept."""
    return [call["name"] for m in trace.messages if m["role"] == "assistant" for call in m.get("tool_calls") or []]


def configured_train_traces(run_dir: Path, cfg: RunConfig) -> tuple[list[Trace], int]:
    """``load_train_traces`` as the run's config sets it. SFT, the teacher cache and distillation all read
    their traces here, so the cache always holds exactly the examples distillation trains on."""
    return load_train_traces(run_dir, cfg.sft.max_examples, cfg.seed, cfg.sft.first_turns_of_rest,
                             cfg.sft.multi_tool_first_turns)


def first_turn(trace: Trace, copy: int = 0) -> Trace:
    """``trace`` cut after its first assistant turn: the system prompt, the question and the step that picks
    a tool (or answers). That step is where a small student goes wrong most, and without the observations and
    later turns it costs about a tenth of the whole trace's tokens. ``copy`` numbers repeated cuts' ids."""
    end = next(i for i, m in enumerate(trace.messages) if m["role"] == "assistant") + 1
    suffix = f"#first-turn-{copy}" if copy else "#first-turn"
    return trace.model_copy(update={"id": trace.id + suffix, "messages": trace.messages[:end]})


def tokenize_traces(traces: list[Trace], tokenizer: Any, max_length: int) -> tuple[list[dict[str, Any]], DataStats]:
    """One example per trace: ``{"id", "input_ids", "assistant_masks"}``, cut to ``max_length`` tokens.

    A trace longer than ``max_length`` keeps its start (so every kept step sees the prompt it was
    written for) and loses its last turns; they are counted so the caller can warn.
    """
    from agentdistill.models.templates import check_assistant_mask, tokenize_for_training

    examples: list[dict[str, Any]] = []
    lengths: list[int] = []
    trained = total = 0
    for t in traces:
        full = tokenize_for_training(tokenizer, t.messages, UNLIMITED)
        lengths.append(len(full["input_ids"]))
        ids, mask = full["input_ids"][:max_length], full["assistant_masks"][:max_length]
        check_assistant_mask(mask, t.id)
        examples.append({"id": t.id, "input_ids": ids, "assistant_masks": mask})
        trained += sum(mask)
        total += len(ids)
    stats = DataStats(
        n_traces=len(traces),
        n_examples=len(examples),
        n_truncated=sum(n > max_length for n in lengths),
        mean_tokens=sum(lengths) / max(1, len(lengths)),
        max_tokens=max(lengths, default=0),
        trained_fraction=trained / max(1, total),
    )
    return examples, stats


def to_dataset(examples: list[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` with the columns SFTTrainer expects of pre-tokenized data."""
    from datasets import Dataset

    return Dataset.from_dict({
        "input_ids": [e["input_ids"] for e in examples],
        "assistant_masks": [e["assistant_masks"] for e in examples],
    })
