"""Cross-tokenizer distillation: the SFT loss plus ULD against the teacher's distributions.

    traces.jsonl + teacher_topk/ -> DistillTrainer (TRL SFTTrainer + PEFT) -> adapters/<student>-uld/

For each training trace the student and the teacher tokenize the same canonical messages with their
own chat templates; train/align.py matches each student response token to the teacher token that
starts at the same character. The loss (train/uld.py) is

    L = CE(student, assistant tokens) + distill.uld_weight * mean over matched tokens of ULD(p_student, q_teacher)

with q read from the offline cache (``distill.mode: offline``, train/teacher_cache.py) or computed by
the teacher inside the loop (``online``: no cache, both models in memory). A teacher with the
student's tokenizer may use ``distill.loss: kl`` or ``jsd`` on its top-k ids instead of ULD.

The trainer is TRL's SFTTrainer with ``compute_loss`` replaced: the student's backbone gives hidden
states, and ``fused_linear_distill_loss`` forms logits chunk by chunk from them and the LM head's
weight (frozen under LoRA), so no [batch, seq, vocab] tensor exists. Everything else (PEFT, the
optimizer, checkpoints every ``sft.save_steps``, resume, TensorBoard) is SFT's: LoRA shape, batch
size, max_length and, unless the ``distill`` section sets them, learning rate, epochs and max_steps
come from ``sft``, so that SFT-only and SFT+ULD differ only by the distillation term. The adapter is
written like SFT's, to a temp folder renamed into ``adapters/<student>-uld/`` when complete.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import agentdistill
from agentdistill.config import DistillConfig, RunConfig
from agentdistill.errors import UserError
from agentdistill.records import Trace
from agentdistill.run_layout import ADAPTER_META, RunLayout
from agentdistill.train.align import NO_MATCH, align, tokenize_trace

console = Console(stderr=True)
IGNORE_INDEX = -100


@dataclass
class DistillData:
    n_examples: int
    n_trained_tokens: int  # student tokens with a CE label
    match_rate: float  # share of those with a teacher distribution (the ULD term)
    n_truncated: int


def build_examples(
    traces: list[Trace], student_tok: Any, teacher_tok: Any, max_length: int, cache: Any = None
) -> tuple[list[dict[str, Any]], DistillData]:
    """One example per trace: student ``input_ids`` and ``assistant_masks`` (as SFT), and per student token
    ``teacher_index``: the teacher-cache row (offline) or the teacher token position (online, when
    ``cache`` is None; then ``teacher_input_ids`` too) of its matched teacher token, or -1."""
    from agentdistill.models.templates import check_assistant_mask
    from agentdistill.train.teacher_cache import token_digest

    examples, trained, matched, truncated = [], 0, 0, 0
    for trace in traces:
        student = tokenize_trace(student_tok, trace.messages)
        teacher = tokenize_trace(teacher_tok, trace.messages)
        matches = align(student, teacher)
        truncated += len(student.input_ids) > max_length
        ids, mask, matches = student.input_ids[:max_length], student.assistant_masks[:max_length], matches[:max_length]
        check_assistant_mask(mask, trace.id)
        example: dict[str, Any] = {"input_ids": ids, "assistant_masks": mask}
        if cache is None:
            example["teacher_index"] = matches
            example["teacher_input_ids"] = teacher.input_ids
        else:
            if trace.id not in cache.index:
                raise UserError(
                    f"trace {trace.id!r} is not in the teacher cache.",
                    hint="Run `agentdistill teacher-cache` again: it adds the missing traces.",
                )
            first, n_rows, digest = cache.index[trace.id]
            positions = teacher.assistant_positions()
            if len(positions) != n_rows or digest != token_digest(teacher.input_ids):
                raise UserError(
                    f"the teacher cache does not match trace {trace.id!r} as the teacher tokenizes it now "
                    f"({n_rows} cached rows, {len(positions)} assistant tokens).",
                    hint="traces.jsonl or the chat template changed since the cache was built: "
                    "run `agentdistill teacher-cache --force`.",
                )
            row_of = {pos: first + r for r, pos in enumerate(positions)}
            example["teacher_index"] = [row_of[j] if j != NO_MATCH else NO_MATCH for j in matches]
        trained += sum(mask)
        matched += sum(j != NO_MATCH for j in example["teacher_index"])
        examples.append(example)
    return examples, DistillData(len(examples), trained, matched / max(1, trained), truncated)


def _pad(rows: list[list[int]], value: int) -> Any:
    import torch

    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


@dataclass
class DistillCollator:
    """Pads a batch and attaches the teacher side: cached rows (offline) or teacher token ids (online)."""

    pad_id: int
    cache: Any = None  # TeacherCache, or None in online mode
    teacher_pad_id: int = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        ids = _pad([f["input_ids"] for f in features], self.pad_id)
        mask = _pad([f["assistant_masks"] for f in features], 0)
        attention = _pad([[1] * len(f["input_ids"]) for f in features], 0)
        index = _pad([f["teacher_index"] for f in features], NO_MATCH)
        batch = {
            "input_ids": ids,
            "attention_mask": attention,
            "labels": ids.masked_fill(mask == 0, IGNORE_INDEX),
            "teacher_index": index,
        }
        if self.cache is None:
            batch["teacher_input_ids"] = _pad([f["teacher_input_ids"] for f in features], self.teacher_pad_id)
            return batch
        rows = index.clamp(min=0)
        batch["teacher_probs"] = self.cache.probs[rows]  # [B, L, k] fp16; rows of -1 read row 0, masked later
        batch["teacher_tail"] = self.cache.tail[rows]
        if self.cache.ids is not None:
            batch["teacher_ids"] = self.cache.ids[rows].long()
        return batch


def online_teacher_rows(teacher: Any, batch: dict[str, Any], d: DistillConfig) -> tuple[Any, Any, Any]:
    """The teacher side of a collated online batch, shaped like the offline one: probs [B, L, k], tail
    [B, L] (and ids [B, L, k] for kl / jsd), filled where ``teacher_index`` names a teacher token."""
    import torch

    from agentdistill.train.teacher_cache import teacher_rows

    index = batch["teacher_index"]
    b, n = index.shape
    with_ids = d.loss != "uld"
    probs = torch.zeros(b, n, d.top_k, device=index.device)
    tail = torch.zeros(b, n, device=index.device)
    ids = torch.zeros(b, n, d.top_k, dtype=torch.long, device=index.device) if with_ids else None
    for row in range(b):
        where = (index[row] >= 0).nonzero().squeeze(1)
        if where.numel() == 0:
            continue
        positions = index[row, where].tolist()
        teacher_ids = batch["teacher_input_ids"][row, : max(positions) + 1].tolist()  # no padding, no tail
        p, t, i = teacher_rows(teacher, teacher_ids, positions, d.top_k, d.temperature, with_ids)
        probs[row, where, : p.shape[1]] = p.to(probs.device)
        tail[row, where] = t.to(tail.device)
        if ids is not None:
            ids[row, where, : i.shape[1]] = i.to(ids.device)
    return probs, tail, ids


def _add_distill_forward(model: Any) -> None:
    """Let ``model(..., distill=fn)`` return ``fn(last_hidden_state, lm_head)`` instead of logits.

    The call goes through the model's own forward (so PEFT and DDP wrappers see it, as TRL's fused LM
    head does) but stops before the LM head: the loss builds logits chunk by chunk itself.
    """
    original = model.forward

    @functools.wraps(type(model).forward)
    def forward(self: Any, *args: Any, distill: Any = None, **kwargs: Any) -> Any:
        if distill is None:
            return original(*args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        return distill(hidden, self.get_output_embeddings())

    model.forward = types.MethodType(forward, model)


def _make_trainer_class() -> type:
    from trl import SFTTrainer

    from agentdistill.train.sampling import ShuffledLengthBatchesMixin
    from agentdistill.train.uld import distill_loss, fused_linear_distill_loss

    class DistillTrainer(ShuffledLengthBatchesMixin, SFTTrainer):
        """TRL's SFTTrainer whose loss is CE + weight * ULD (or KL / JSD) on the assistant tokens."""

        # compute_loss returns this micro-batch's share of the whole step's mean (see get_batch_samples)
        loss_is_scaled_for_ga = True

        def __init__(self, *args: Any, distill: DistillConfig, teacher: Any = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.distill = distill
            self.teacher = teacher  # online mode: the teacher model, in eval mode
            self.step_tokens: tuple[int, int] | None = None  # this step's (CE, teacher) tokens over all ranks
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            text_config = base.config.get_text_config()
            # a model that post-processes its logits (soft-capping, scaling) takes the full-logits path
            self.fused = all(
                getattr(text_config, a, None) is None
                for a in ("final_logit_softcapping", "logit_scale", "logits_scaling")
            )
            if self.fused:
                _add_distill_forward(base)

        def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
            """The step's micro-batches, and (kept for compute_loss) its trained tokens and those of them with a
            teacher row, counted over all its micro-batches and all ranks.

            So the step's loss is one mean over its tokens, CE and ULD each over their own count, whatever the
            accumulation steps and the number of processes: 2 GPUs at batch B train as 1 GPU at batch 2B (a
            mean per micro-batch would weight a short example's tokens more wherever the batch is cut)."""
            import torch

            batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
            counts = torch.zeros(2, dtype=torch.long, device=device)
            for b in batches:
                trained = b["labels"][:, 1:] != IGNORE_INDEX
                counts[0] += trained.sum().to(device)
                counts[1] += (trained & (b["teacher_index"][:, 1:] >= 0)).sum().to(device)
            total = self.accelerator.gather(counts).view(-1, 2).sum(0).tolist()
            self.step_tokens = (int(total[0]), int(total[1]))
            return batches, num_items

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ARG002
            d = self.distill
            if self.teacher is not None:
                q, q_tail, q_ids = online_teacher_rows(self.teacher, inputs, d)
            else:
                q, q_tail, q_ids = inputs["teacher_probs"], inputs["teacher_tail"], inputs.get("teacher_ids")
            # position t's logits predict token t + 1: shift every per-token input by one
            labels = inputs["labels"][:, 1:]
            keep = labels != IGNORE_INDEX  # only trained tokens enter the loss (prompts are most tokens)
            has_teacher = (inputs["teacher_index"][:, 1:] >= 0)[keep]
            q, q_tail = q[:, 1:][keep], q_tail[:, 1:][keep]
            q_ids = None if q_ids is None else q_ids[:, 1:][keep]
            # This micro-batch's share of the step's mean: P * (sum CE / step CE tokens + w * sum ULD / step teacher
            # tokens), P because DDP / FSDP average the ranks' gradients. The loss returns CE_mean + w' * ULD_mean, so
            # it is scaled by the CE share and w' carries the ratio of the two shares.
            n_ce, n_uld = int(keep.sum()), int(has_teacher.sum())
            total_ce, total_uld = self.step_tokens if self.model.training and self.step_tokens else (n_ce, n_uld)
            share_ce, share_uld = n_ce / max(total_ce, 1), n_uld / max(total_uld, 1)
            scale = self.accelerator.num_processes * share_ce
            loss_args = dict(
                teacher_ids=q_ids,
                kind=d.loss,
                top_k=d.top_k,
                temperature=d.temperature,
                weight=d.uld_weight * share_uld / share_ce if share_ce else d.uld_weight,
                chunk_tokens=d.chunk_tokens,
            )

            def head_loss(hidden: Any, lm_head: Any) -> Any:
                h = hidden[:, :-1][keep]
                return fused_linear_distill_loss(
                    h, lm_head.weight, labels[keep], q, q_tail, has_teacher, lm_head_bias=lm_head.bias, **loss_args
                )

            model_inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
            if self.fused:
                parts = model(**model_inputs, distill=head_loss)
            else:
                logits = model(**model_inputs, use_cache=False).logits[:, :-1][keep]
                parts = distill_loss(logits, labels[keep], q, q_tail, has_teacher, **loss_args)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["ce"].append(parts.ce.item())
            self._metrics[mode][d.loss].append(parts.distill.item())
            self._metrics[mode]["teacher_coverage"].append(has_teacher.float().mean().item())
            loss = parts.loss * scale
            return (loss, parts) if return_outputs else loss

    return DistillTrainer


def _check_cache(header: dict[str, Any], teacher: str, d: DistillConfig, vocab: int) -> None:
    """Refuse a cache built for another teacher, a smaller k, another temperature, or without token ids."""
    built = {k: header.get(k) for k in ("teacher", "k", "temperature", "with_ids")}
    ok = (
        built["teacher"] == teacher
        and float(built["temperature"] or "nan") == float(d.temperature)
        and int(built["k"] or 0) >= min(d.top_k, vocab)  # a larger cached k is folded into the tail
        and (d.loss == "uld" or built["with_ids"] == "True")
    )
    if not ok:
        raise UserError(
            f"teacher_topk/ was built with {built}; the distill config asks for teacher {teacher!r}, "
            f"k={d.top_k}, temperature={d.temperature}, loss={d.loss}.",
            hint="Run `agentdistill teacher-cache --force` to rebuild it for this config.",
        )


@dataclass
class DistillResult:
    adapter_dir: Path
    steps: int
    steps_run: int
    train_loss: float | None
    seconds: float
    s_per_step: float | None
    data: DistillData | None
    skipped: bool = False


def train_distill(run_dir: Path, cfg: RunConfig, *, max_steps: int | None = None, force: bool = False,
                  callbacks: list[Any] | None = None) -> DistillResult:
    """Distill the teacher into ``models.student`` on the run's train traces -> adapters/<student>-uld/.

    ``callbacks``: transformers TrainerCallbacks to add (benchmarks/multi_gpu.py times steps with one)."""
    import torch

    from agentdistill.models.registry import load_model, load_tokenizer
    from agentdistill.train.data import configured_train_traces, to_dataset
    from agentdistill.train.sft import (
        adapter_subdir,
        load_base_model,
        lora_config,
        save_adapter,
        train_resuming,
        training_args,
    )
    from agentdistill.train.teacher_cache import TeacherCache, teacher_source, tokenizer_sha256

    run_dir = Path(run_dir)
    d = cfg.distill
    student = cfg.models.student
    out = RunLayout(run_dir).uld_adapter(adapter_subdir(student))
    ckpt_dir = RunLayout(run_dir).checkpoints(f"distill-{adapter_subdir(student).replace('/', '--')}")
    if (out / ADAPTER_META).exists() and not force:
        meta = json.loads((out / ADAPTER_META).read_text())
        console.print(f"[dim]{out} is already trained ({meta.get('steps')} steps); --force retrains it.[/]")
        return DistillResult(
            out, meta.get("steps", 0), 0, meta.get("train_loss"), 0.0, meta.get("s_per_step"), None, skipped=True
        )
    if force and int(os.environ.get("RANK", "0")) == 0:  # the other ranks look for checkpoints after rank 0
        shutil.rmtree(ckpt_dir, ignore_errors=True)

    teacher_base, teacher_adapter = teacher_source(run_dir, cfg)
    student_tok = load_tokenizer(student, cfg.models.cache_dir)
    teacher_tok = load_tokenizer(teacher_base, cfg.models.cache_dir)
    same_tokenizer = tokenizer_sha256(student_tok) == tokenizer_sha256(teacher_tok)
    if d.loss != "uld" and not same_tokenizer:
        raise UserError(
            f"distill.loss {d.loss!r} compares token ids, but {student} and {teacher_base} have different tokenizers.",
            hint="Use distill.loss: uld for a cross-tokenizer pair.",
        )
    cache = None
    if d.mode == "offline":
        cache = TeacherCache.open(run_dir)
        _check_cache(cache.header, teacher_base, d, len(teacher_tok))

    traces, n_train = configured_train_traces(run_dir, cfg)
    examples, data = build_examples(traces, student_tok, teacher_tok, cfg.sft.max_length, cache)
    console.print(
        f"distill {teacher_base} -> {student} ({d.loss}, k={d.top_k}, T={d.temperature}, {d.mode}): "
        f"{data.n_examples} examples of {n_train} train traces, {data.n_trained_tokens} trained tokens, "
        f"{data.match_rate:.1%} of them matched to a teacher token"
    )

    cuda = torch.cuda.is_available()
    teacher = None
    if d.mode == "online":
        teacher, _ = load_model(teacher_base, adapter=teacher_adapter, cache_dir=cfg.models.cache_dir)
        teacher.requires_grad_(False)
    base = load_base_model(student, cfg, cuda)
    steps = next(s for s in (max_steps, d.max_steps, cfg.sft.max_steps) if s is not None)
    train_cfg = cfg.model_copy(deep=True)  # SFT's training arguments with the distill section's schedule
    if d.learning_rate is not None:
        train_cfg.sft.learning_rate = d.learning_rate
    if d.epochs is not None:
        train_cfg.sft.epochs = d.epochs
    args = training_args(train_cfg, ckpt_dir, steps, cuda, flash=False)
    args.remove_unused_columns = False  # keep teacher_index etc. for the collator
    args.dataset_kwargs = {"skip_prepare_dataset": True}
    callbacks = list(callbacks or [])
    if "tensorboard" in cfg.sft.report_to and int(os.environ.get("RANK", "0")) == 0:  # one log, rank 0's
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(RunLayout(run_dir).logs(ckpt_dir.name)))))
    dataset = to_dataset(examples).add_column("teacher_index", [e["teacher_index"] for e in examples])
    if cache is None:
        dataset = dataset.add_column("teacher_input_ids", [e["teacher_input_ids"] for e in examples])
    collator = DistillCollator(student_tok.pad_token_id, cache, teacher_tok.pad_token_id or 0)
    trainer = _make_trainer_class()(
        model=base, args=args, train_dataset=dataset, processing_class=student_tok, data_collator=collator,
        peft_config=None if cfg.sft.method == "full" else lora_config(cfg, base), callbacks=callbacks,
        distill=d, teacher=teacher,
    )  # fmt: skip
    output, seconds, ran = train_resuming(trainer, ckpt_dir)
    meta = {
        "base_model": student,
        "method": cfg.sft.method,
        "kind": "uld" if d.loss == "uld" else d.loss,
        "teacher": teacher_base,
        "teacher_adapter": str(teacher_adapter) if teacher_adapter else None,
        "steps": trainer.state.global_step,
        "train_loss": output.training_loss if ran else None,
        "s_per_step": round(seconds / ran, 3) if ran else None,
        "n_examples": data.n_examples,
        "data": asdict(data),
        "distill": d.model_dump(mode="json"),
        "sft": cfg.sft.model_dump(mode="json"),
        "agentdistill_version": agentdistill.__version__,
    }
    save_adapter(trainer, student_tok, out, meta)
    if trainer.is_world_process_zero():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        console.print(
            f"adapter saved to {out}: {meta['steps']} steps, {meta['s_per_step'] or 0:.2f} s/step, "
            f"loss {meta['train_loss'] or float('nan'):.4f}"
        )
    return DistillResult(out, trainer.state.global_step, ran, meta["train_loss"], seconds, meta["s_per_step"], data)
