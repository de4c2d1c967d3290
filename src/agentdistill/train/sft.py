"""Supervised fine-tuning on the teacher's traces: TRL's SFTTrainer + PEFT, assistant turns only.

    traces.jsonl (train split) -> train.data (ids + assistant masks) -> SFTTrainer -> adapters/<model>/

Methods (``sft.method``): ``lora`` (default: low-rank adapters on ``target_modules``, the base
frozen), ``qlora`` (the same on a 4-bit NF4 base via bitsandbytes; needs CUDA) and ``full``.
The loss is the mean next-token cross-entropy over assistant tokens (train/data.py states it).

Speed on a CPU: examples are batched by length so a batch pads little, the batches in random order
(train/sampling.py: transformers' own ``group_by_length`` order trains kind by kind); the
sequence is capped by ``sft.max_length``; matmuls run in bf16 where the CPU has native bf16
instructions (``use_bf16``); gradient checkpointing is off (it trades compute, which a CPU lacks,
for memory, which a 135M model does not need); the system prompt that every example starts with
runs once per batch and only the assistant positions go through the LM head
(train/shared_prefix.py: the same loss and gradients for fewer tokens). On GPU, bf16 and gradient
checkpointing are on, and sequences go padding-free when the model runs flash attention.
``accelerate launch -m agentdistill.cli sft ...`` spreads the same code over several GPUs
(DDP and FSDP configs, and what changes, in examples/accelerate/).

Resumable: checkpoints go to ``<run>/checkpoints/sft-<model>/`` every ``save_steps`` steps and a
rerun continues from the latest complete one; a checkpoint a kill cut short (the Trainer writes
trainer_state.json last) is moved into ``incomplete/`` there and named in a warning. The finished
adapter is written to a temporary folder and renamed into ``<run>/adapters/<model>/`` (adapter +
tokenizer + chat template + agentdistill.json), so that folder exists only when complete; then the
checkpoints are removed. TensorBoard logs stay in
``<run>/logs/sft-<model>/`` (W&B too when ``sft.report_to`` names ``wandb``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import agentdistill
from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.run_layout import ADAPTER_META, INCOMPLETE_CHECKPOINTS, RunLayout
from agentdistill.train.data import configured_train_traces, to_dataset, tokenize_traces

console = Console(stderr=True)


@dataclass
class SFTResult:
    adapter_dir: Path
    base_model: str
    method: str
    steps: int  # optimizer steps in all
    steps_run: int  # of which this call ran (fewer after a resume)
    train_loss: float | None
    seconds: float
    s_per_step: float | None  # measured over the steps this process ran
    n_examples: int
    skipped: bool = False  # the adapter already existed


def model_name(model: str, cfg: RunConfig) -> str:
    """``student`` / ``teacher`` -> the configured model; anything else is kept as given."""
    return {"student": cfg.models.student, "teacher": cfg.models.teacher}.get(model, model)


def adapter_subdir(name: str) -> str:
    """The folder under adapters/: the registry name or HF id (``Qwen/Qwen2.5-0.5B`` nests), or a
    local folder's name."""
    path = Path(name).expanduser()
    return path.name if path.exists() else name


def use_bf16(cfg: RunConfig, cuda: bool) -> bool:
    """bf16 mixed precision: on a CUDA GPU that has it, or on a CPU with native bf16 matrix instructions.

    On a CPU with AVX512-BF16 (AMD EPYC here), autocast to bf16 made a LoRA step of SmolLM2-135M on
    4 x 768 tokens 1.5x faster (103 s vs 157 s on a loaded 2-core box) with the same loss to 3 digits;
    without such instructions bf16 is emulated and slower than float32, so it stays off. With it, a
    frozen base is loaded in bf16 (``load_base_model``); trained weights and optimizer state stay float32.
    """
    from agentdistill.models.precision import native_bf16

    return cfg.sft.bf16 if cfg.sft.bf16 is not None else native_bf16(cuda)


def lora_config(cfg: RunConfig, model: Any) -> Any:
    """LoRA on ``sft.target_modules``; with ``sft.lora_layers: N``, only in the top N transformer layers.

    Adapters in the top layers only end the backward pass there; the layers below run forward alone and
    keep no activations. With 15 of SmolLM2-135M's 30 layers adapted a CPU step cost 41% less (1.51 vs
    2.55 s per example of 450 + 450 shared tokens, batch 4, bf16).
    """
    from peft import LoraConfig

    s = cfg.sft
    kwargs: dict[str, Any] = {}
    if s.lora_layers is not None:
        n_layers = model.config.get_text_config().num_hidden_layers
        if not 1 <= s.lora_layers <= n_layers:
            raise UserError(f"sft.lora_layers is {s.lora_layers}, but {model.config.name_or_path or 'the model'} "
                            f"has {n_layers} layers.", hint=f"Use a number from 1 to {n_layers}, or remove it for all.")
        kwargs["layers_to_transform"] = list(range(n_layers - s.lora_layers, n_layers))
    targets = s.target_modules
    if targets == "all-linear" and kwargs:  # PEFT takes a layer subset only with module names
        targets = linear_module_names(model)
    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM", **kwargs)


def linear_module_names(model: Any) -> list[str]:
    """The names of the linear layers inside the transformer blocks (what PEFT's "all-linear" means)."""
    import torch

    output = model.get_output_embeddings()
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and module is not output})


def load_base_model(name: str, cfg: RunConfig, cuda: bool) -> Any:
    """The base model for training, on no particular device (the Trainer / accelerate places it)."""
    import torch
    from transformers import AutoModelForCausalLM

    from agentdistill.models.registry import prepare

    folder = prepare(name, cfg.models.cache_dir)
    # A frozen base may sit in bf16 (PEFT keeps the adapters float32); weights that AdamW updates may not:
    # bf16 rounds away updates smaller than 1/256 of a weight, so full fine-tuning keeps float32 masters.
    # On a CPU with native bf16 a float32 base made autocast copy every weight to bf16 at every matmul,
    # forward and backward: 13% of a LoRA step's time; a bf16 base cut 10 steps from 50.9 s to 45.4 s.
    low = use_bf16(cfg, cuda) and cfg.sft.method != "full"
    dtype = torch.bfloat16 if low else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.sft.method == "qlora":
        if not cuda:
            raise UserError("sft.method 'qlora' needs a CUDA GPU (bitsandbytes 4-bit); none is visible.",
                            hint="Use sft.method: lora on a CPU; it trains the same adapter on an unquantized base.")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise UserError("sft.method 'qlora' needs bitsandbytes.", hint="pip install bitsandbytes") from e
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    return AutoModelForCausalLM.from_pretrained(folder, **kwargs)


def training_args(cfg: RunConfig, ckpt_dir: Path, max_steps: int, cuda: bool, flash: bool) -> Any:
    """The TRL ``SFTConfig`` for ``cfg.sft``, checkpointing into ``ckpt_dir``; ``flash``: the attention kernel
    takes padding-free batches."""
    from trl import SFTConfig as TRLSFTConfig

    s = cfg.sft
    # TensorBoard is attached by train_sft with a log folder in the run; the rest (wandb, ...) by name
    report_to = [r for r in s.report_to if r not in ("none", "tensorboard")] or "none"
    # transformers 5 renamed gradient_checkpointing (kept as a deprecated alias) to activation_checkpointing
    fields = TRLSFTConfig.__dataclass_fields__
    ckpt_key = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return TRLSFTConfig(
        output_dir=str(ckpt_dir),
        max_steps=max_steps,
        num_train_epochs=s.epochs,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        learning_rate=s.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.0,
        logging_steps=s.logging_steps,
        save_strategy="steps",
        save_steps=s.save_steps,
        save_total_limit=2,
        report_to=report_to,
        seed=cfg.seed,
        max_length=s.max_length,
        packing=s.packing,
        padding_free=flash and not s.packing,
        train_sampling_strategy="random" if s.packing else "group_by_length",
        **{ckpt_key: cuda},
        bf16=use_bf16(cfg, cuda),
        use_cpu=not cuda,  # also what lets transformers accept bf16 without a GPU
        fp16=False,
        neftune_noise_alpha=s.neftune_noise_alpha,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        # Under DDP every trained weight (LoRA A and B, or all of them in full fine-tuning) gets a gradient at every
        # step, so the search for unused parameters would only cost a pass over the graph per step.
        ddp_find_unused_parameters=False,
        dataset_num_proc=None,
        disable_tqdm=False,
    )


def save_adapter(trainer: Any, tokenizer: Any, out: Path, meta: dict[str, Any]) -> None:
    """Write the adapter (or full model), tokenizer and marker into a temp folder, then rename it to ``out``.

    Under ``accelerate launch`` every rank calls this (FSDP gathers the weights from all of them), rank 0 alone
    writes, and every rank returns once ``out`` is complete."""
    tmp = out.with_name(f".{out.name}.partial")
    zero = trainer.is_world_process_zero()
    if zero:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()  # a slower rank must not clear tmp after rank 0 has begun writing it
    trainer.save_model(str(tmp))
    if not zero:
        trainer.accelerator.wait_for_everyone()
        return
    if not any((tmp / name).exists() for name in WEIGHTS):  # FSDP with a sharded state dict saves no weights here
        trainer.accelerator.wait_for_everyone()
        raise UserError(f"the trainer wrote no model weights into {tmp}.",
                        hint="Under FSDP set fsdp_state_dict_type: FULL_STATE_DICT (examples/accelerate/fsdp.yaml).")
    tokenizer.save_pretrained(str(tmp))  # chat_template.jinja with the observation role travels with it
    adapter_cfg = tmp / "adapter_config.json"
    if adapter_cfg.exists():  # record the base by name, not by this machine's cache path
        data = json.loads(adapter_cfg.read_text())
        data["base_model_name_or_path"] = meta["base_model"]
        adapter_cfg.write_text(json.dumps(data, indent=2) + "\n")
    (tmp / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.with_name(f".{out.name}.old")
    if out.exists():  # a retrained adapter: the old one steps aside first, so a kill leaves one of the two
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()


def train_sft(run_dir: Path, cfg: RunConfig, model: str | None = None, *, max_steps: int | None = None,
              force: bool = False, callbacks: list[Any] | None = None) -> SFTResult:
    """Fine-tune ``model`` (default ``cfg.sft.model``) on the run's train traces; returns where the adapter is.

    ``callbacks``: transformers TrainerCallbacks to add (benchmarks/sft_step.py times steps with one)."""
    import torch

    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.sampling import ShuffledLengthBatchesMixin
    from agentdistill.train.shared_prefix import SharedPrefixSFTTrainer, shared_prefix
    from agentdistill.train.time_budget import PlannedCosineMixin, TimeBudget

    class StudentSFTTrainer(ShuffledLengthBatchesMixin, PlannedCosineMixin, SharedPrefixSFTTrainer):
        pass

    run_dir = Path(run_dir)
    name = model_name(model or cfg.sft.model, cfg)
    out = RunLayout(run_dir).adapter(adapter_subdir(name))
    ckpt_dir = RunLayout(run_dir).checkpoints(f"sft-{adapter_subdir(name).replace('/', '--')}")
    if (out / ADAPTER_META).exists() and not force:
        meta = json.loads((out / ADAPTER_META).read_text())
        console.print(f"[dim]{out} is already trained ({meta.get('steps')} steps); --force retrains it.[/]")
        return SFTResult(out, name, meta.get("method", cfg.sft.method), meta.get("steps", 0), 0, meta.get("train_loss"),
                         0.0, meta.get("s_per_step"), meta.get("n_examples", 0), skipped=True)
    if force and int(os.environ.get("RANK", "0")) == 0:  # other ranks look for checkpoints after rank 0
        shutil.rmtree(ckpt_dir, ignore_errors=True)

    traces, n_train = configured_train_traces(run_dir, cfg)
    tokenizer = load_tokenizer(name, cfg.models.cache_dir)
    examples, stats = tokenize_traces(traces, tokenizer, cfg.sft.max_length)
    console.print(f"sft {name} ({cfg.sft.method}): {stats.n_examples} examples of {n_train} train traces, "
                  f"{stats.mean_tokens:.0f} tokens on average (max {stats.max_tokens}), "
                  f"{stats.trained_fraction:.0%} of tokens trained")
    if stats.n_truncated:
        console.print(f"[yellow]warning:[/] {stats.n_truncated} of {stats.n_examples} examples are longer than "
                      f"sft.max_length={cfg.sft.max_length} and lose their last turns, usually the final answer, so "
                      f"the student does not learn to finish them; sft.max_length: {stats.max_tokens} keeps all whole.")

    cuda = torch.cuda.is_available()
    base = load_base_model(name, cfg, cuda)
    flash = str(getattr(base.config, "_attn_implementation", "")).startswith("flash")
    steps = max_steps if max_steps is not None else cfg.sft.max_steps
    args = training_args(cfg, ckpt_dir, steps, cuda, flash)
    callbacks = list(callbacks or [])
    if "tensorboard" in cfg.sft.report_to and int(os.environ.get("RANK", "0")) == 0:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(RunLayout(run_dir).logs(ckpt_dir.name)))))
    budget = None
    if cfg.sft.time_budget_min:
        budget = TimeBudget(cfg.sft.time_budget_min * 60, report=lambda m: console.print(f"[yellow]{m}[/]"))
        callbacks.append(budget)
    prefix_ids = shared_prefix(examples) if cfg.sft.share_prefix else []
    if prefix_ids:
        console.print(f"the first {len(prefix_ids)} tokens (system prompt) are shared by every example: "
                      "they run once per batch")
    trainer = StudentSFTTrainer(
        prefix_ids=prefix_ids,
        model=base,
        args=args,
        train_dataset=to_dataset(examples),
        processing_class=tokenizer,
        peft_config=None if cfg.sft.method == "full" else lora_config(cfg, base),
        callbacks=callbacks,
    )
    if budget is not None:
        from transformers.trainer_callback import ProgressCallback

        budget.progress = next((c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)), None)
    output, seconds, ran = train_resuming(trainer, ckpt_dir)
    meta = {
        "base_model": name,
        "method": cfg.sft.method,
        "kind": "sft",
        "steps": trainer.state.global_step,
        "planned_steps": budget.planned_steps if budget is not None else trainer.state.max_steps,  # > steps: cut
        "train_loss": output.training_loss if ran else None,
        "s_per_step": round(seconds / ran, 3) if ran else None,
        "n_examples": stats.n_examples,
        "data": asdict(stats),
        "sft": cfg.sft.model_dump(mode="json"),
        "agentdistill_version": agentdistill.__version__,
    }
    save_adapter(trainer, tokenizer, out, meta)
    if trainer.is_world_process_zero():
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the adapter is complete: checkpoints only cost disk
        of_planned = f" of {meta['planned_steps']} planned" if meta["planned_steps"] != meta["steps"] else ""
        console.print(f"adapter saved to {out}: {meta['steps']}{of_planned} steps, "
                      f"{meta['s_per_step'] or 0:.2f} s/step, loss {meta['train_loss'] or float('nan'):.4f}")
    return SFTResult(out, name, cfg.sft.method, trainer.state.global_step, ran, meta["train_loss"], seconds,
                     meta["s_per_step"], stats.n_examples)


def train_resuming(trainer: Any, ckpt_dir: Path) -> tuple[Any, float, int]:
    """Train from the last checkpoint in ``ckpt_dir`` if one exists (a killed run resumes there).

    Returns the trainer's output, the seconds spent, and the number of optimizer steps run now. Under
    ``accelerate launch`` rank 0 looks first (and moves incomplete checkpoints aside), then the other ranks, so
    that every rank resumes from the same checkpoint.
    """
    with trainer.accelerator.main_process_first():
        last = last_complete_checkpoint(ckpt_dir)
    if last:
        console.print(f"resuming from {last}")
    start_step = int(Path(last).name.split("-")[-1]) if last else 0
    t0 = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=last)
    return output, time.perf_counter() - t0, trainer.state.global_step - start_step


WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "model.safetensors.index.json",
           "pytorch_model.bin", "pytorch_model.bin.index.json")


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from, or None when it is complete. The Trainer writes weights,
    then optimizer and scheduler, then trainer_state.json: a kill mid-save leaves the last missing or
    cut off, and one while an old checkpoint is being rotated away can leave anything missing."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, ValueError):
        return "trainer_state.json is cut off"
    if not isinstance(state, dict) or "global_step" not in state:
        return "trainer_state.json is cut off"
    if not any((folder / name).exists() for name in WEIGHTS) and not any(folder.glob("pytorch_model_fsdp*")):
        return "no model weights"  # FSDP's own checkpoint: pytorch_model_fsdp.bin, or pytorch_model_fsdp_0/ sharded
    names = {p.name for p in folder.iterdir()}
    if not any(n.startswith(("optimizer", "global_step")) for n in names):  # DeepSpeed keeps it in global_step*
        return "no optimizer state"
    return None


def last_complete_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest checkpoint in ``ckpt_dir`` that can be resumed from. Newer incomplete ones are moved
    into ``ckpt_dir/incomplete/`` (one process of a multi-GPU launch moves them) and named in a warning,
    so the Trainer neither resumes from them nor saves over them later."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not ckpt_dir.is_dir():
        return None
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    found = sorted((p for p in ckpt_dir.iterdir() if p.is_dir() and pattern.match(p.name)),
                   key=lambda p: int(pattern.match(p.name).group(1)), reverse=True)
    for folder in found:
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        aside, n = ckpt_dir / INCOMPLETE_CHECKPOINTS / folder.name, 1
        while aside.exists():  # the same step cut short twice
            n += 1
            aside = ckpt_dir / INCOMPLETE_CHECKPOINTS / f"{folder.name}.{n}"
        if int(os.environ.get("RANK", "0")) == 0:
            aside.parent.mkdir(exist_ok=True)
            os.replace(folder, aside)
        console.print(f"[yellow]warning:[/] {folder} is incomplete ({problem}: a save was cut short); "
                      f"moved it to {aside} and skipped it.", soft_wrap=True)  # a path stays whole
    return None
