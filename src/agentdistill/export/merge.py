"""A run's LoRA adapter folded into its base model, saved as a plain Hugging Face folder.

PEFT's ``merge_and_unload`` adds each adapted layer's low-rank update to its weight,

    W' = W + (alpha / r) * B @ A

so the merged model computes what base + adapter computed, with no PEFT at inference. The folder holds
safetensors weights, the tokenizer and the project's chat template for the model's family (observation
role included, models/templates), so transformers, vLLM or llama.cpp's converter read it as any model.
It is written to a temp folder beside its destination and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from agentdistill.errors import UserError
from agentdistill.run_layout import ADAPTER_META, EXPORT_META, RunLayout

console = Console(stderr=True)


def find_adapter(run_dir: Path, adapter: Path | None = None) -> Path:
    """The adapter folder to export: ``adapter`` (absolute or relative to the run), else the run's
    student adapter (``adapters/<student>``, then ``adapters/<student>-uld``)."""
    from agentdistill.config import load_run_config

    run_dir = Path(run_dir)
    if adapter is not None:
        given = Path(adapter).expanduser()
        candidates = [given] if given.is_absolute() else [given, run_dir / given]
    else:
        student = load_run_config(run_dir).models.student
        sub = Path(student).name if Path(student).expanduser().exists() else student
        candidates = [RunLayout(run_dir).adapter(sub), RunLayout(run_dir).uld_adapter(sub)]
    for folder in candidates:
        if (folder / "adapter_config.json").is_file():
            return folder.resolve()
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise UserError(f"no adapter to export: none of {looked} holds an adapter_config.json.",
                    hint=f"`agentdistill sft --run {run_dir}` trains one (adapters/<student>/), "
                    "or pass --adapter with the folder of one.")


def adapter_facts(adapter: Path) -> dict[str, Any]:
    """What the adapter's folder says of its training (agentdistill.json written by sft/distill), if anything."""
    meta = Path(adapter) / ADAPTER_META
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: data[k] for k in ("base_model", "kind", "method", "steps") if k in data}


def load_merged(adapter: Path) -> tuple[Any, Any, str]:
    """``(model, tokenizer, family)``: the adapter's base in float32 on the CPU with the adapter merged in."""
    import torch

    from agentdistill.models.registry import load_model
    from agentdistill.models.templates import family_of

    with console.status(f"loading the base model and merging {adapter.name} into it"):
        model, tokenizer = load_model(None, adapter=Path(adapter), device="cpu", dtype=torch.float32)
    return model, tokenizer, family_of(tokenizer)


def write_folder_atomically(out: Path, fill: Any) -> Path:
    """Call ``fill(tmp_dir)`` on a temp folder beside ``out``, then put it in ``out``'s place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def save_merged(model: Any, tokenizer: Any, folder: Path, chat_template: str, facts: dict[str, Any]) -> None:
    """Write ``model`` (safetensors), ``tokenizer`` with ``chat_template``, and ``export.json`` into ``folder``."""
    tokenizer.chat_template = chat_template
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (Path(folder) / EXPORT_META).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def export_hf(run_dir: Path, adapter: Path | None = None, out: Path | None = None) -> Path:
    """Merge the run's adapter into its base and save it to ``out`` (default ``<run>/export/hf``)."""
    from agentdistill.models.templates import template_text

    t0 = time.perf_counter()
    adapter = find_adapter(run_dir, adapter)
    out = Path(out) if out is not None else RunLayout(run_dir).export_hf
    model, tokenizer, family = load_merged(adapter)
    facts = {"adapter": str(adapter), "family": family, **adapter_facts(adapter),
             "params": model.num_parameters(), "dtype": str(model.dtype).removeprefix("torch.")}
    with console.status(f"saving the merged model to {out}"):
        write_folder_atomically(out, lambda tmp: save_merged(model, tokenizer, tmp, template_text(family), facts))
    console.print(f"merged model saved to {out} ({facts['params'] / 1e6:.0f}M parameters, {facts['dtype']}, "
                  f"{time.perf_counter() - t0:.0f} s)")
    return out
