"""Batches of similar length in a random order: little padding without a kind-sorted curriculum.

transformers' ``group_by_length`` sorts each megabatch (up to 50 batches) longest first and keeps
that order, so a run walks from the longest traces (multi-step lookups) down to the shortest
(greetings) again and again: runs of 10-20 optimizer steps see one kind of example only. With one
epoch at a high LoRA learning rate the student ends each megabatch tuned to whatever came last; the
training loss jumps every megabatch (measured: 1.7 vs 0.7 at the start of the second of four).

Here each window of ``window_batches`` batches is sorted by length and cut into batches as before,
then all batches are shuffled, so neighbouring steps see different kinds while each batch pads as
little as under ``group_by_length``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler


class ShuffledLengthGroupedSampler(Sampler[int]):
    """Indices whose consecutive ``batch_size`` runs are batches of similar length, the batches in random order."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, window_batches: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.window = batch_size * window_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer each epoch, so a resumed run replays the same order as an uninterrupted one."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        batches: list[list[int]] = []
        for start in range(0, len(order), self.window):
            window = sorted(order[start:start + self.window], key=lambda i: -self.lengths[i])
            batches += [window[i:i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        # A short batch (the dataset's remainder) goes last, where a full-batch trainer expects it.
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        for i in torch.randperm(len(full), generator=g).tolist():
            yield from full[i]
        for b in short:
            yield from b


class ShuffledLengthBatchesMixin:
    """For a transformers Trainer: ``train_sampling_strategy="group_by_length"`` uses the sampler above."""

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset  # type: ignore[attr-defined]
        args = self.args  # type: ignore[attr-defined]
        by_length = args.train_sampling_strategy == "group_by_length"
        if not by_length or dataset is None or "input_ids" not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        lengths = [len(ids) for ids in dataset["input_ids"]]
        # One optimizer step's examples over all ranks: accelerate deals the consecutive per-device batches of this
        # order out to the ranks in turn, so N processes train on the same examples per step, in the same order, as
        # one process with an N times larger batch (the loss curves of 1 and 2 GPUs compare step by step).
        step_batch = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        return ShuffledLengthGroupedSampler(lengths, step_batch, args.seed)
