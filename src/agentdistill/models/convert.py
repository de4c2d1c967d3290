"""GGUF -> plain Hugging Face folder (safetensors, float32), checked by logits.

transformers can read a GGUF (``from_pretrained(dir, gguf_file=...)``: it dequantizes every tensor
to float32), but that takes 15-60 s on a CPU and the result refuses ``save_pretrained`` because its
config carries a GGUF ``quantization_config``. So we do it once: build a plain model of the same
architecture from the config without ``quantization_config``, copy the dequantized state dict in,
tie the weights, and save. Since the weights are the very same float32 numbers, the saved model's
logits equal the GGUF model's; we reload the written folder and compare them before the folder is
accepted (max |difference| is recorded in the marker).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from agentdistill.errors import UserError

# A short input for the logits check; any text exercises every weight of the forward pass.
CHECK_TEXT = "Under Article 12 a refund is paid within 14 days of the request, in the original currency."
LOGITS_ATOL = 1e-4

console = Console(stderr=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _step(msg: str, t0: float) -> None:
    console.print(f"  [dim]{time.perf_counter() - t0:6.1f}s[/dim] {msg}")


def check_saved_tokenizer(saved: Any, read: Any, gguf: Path) -> None:
    """Refuse a saved tokenizer that encodes text unlike the one read from ``gguf``.

    transformers 5.17 saves Gemma 3's GGUF tokenizer as one that splits text into single characters. The
    logits check cannot see it (it feeds both models the same ids) and nothing downstream fails: the
    model would be trained and evaluated on token sequences unlike any it was pretrained on."""
    import transformers

    got, want = (t(CHECK_TEXT, add_special_tokens=False).input_ids for t in (saved, read))
    if got != want:
        raise UserError(
            f"transformers {transformers.__version__} saved the tokenizer of {gguf} wrongly: it encodes a test "
            f"sentence as {len(got)} tokens where the GGUF's own tokenizer gives {len(want)}.",
            hint="Install the tested version (pip install -c constraints.txt transformers) and run "
            "`agentdistill models prepare` again.",
        )


def check_saved_end_token(saved: Any, gguf: Path) -> None:
    """Refuse a saved tokenizer whose end-of-sequence token is not the one ``gguf`` names.

    transformers 5.17 saves SmolLM2's GGUF tokenizer with ``<|im_start|>`` as its eos token where the GGUF
    says ``<|im_end|>``. A student fine-tuned from it saves that tokenizer with its adapter, and the GGUF
    exported from the adapter then aborts llama.cpp (a C++ ``std::out_of_range``, the whole process gone)."""
    import gguf as gguf_py
    import transformers

    field = gguf_py.GGUFReader(gguf).fields.get("tokenizer.ggml.eos_token_id")
    if field is None:
        return
    want = int(field.contents())
    if saved.eos_token_id != want:
        raise UserError(
            f"transformers {transformers.__version__} saved the tokenizer of {gguf} with end-of-sequence token "
            f"{saved.eos_token!r} (id {saved.eos_token_id}) where the GGUF names id {want} "
            f"({saved.convert_ids_to_tokens(want)!r}).",
            hint="Install the tested version (pip install -c constraints.txt transformers) and run "
            "`agentdistill models prepare` again.",
        )


@torch.no_grad()
def convert_gguf(gguf: Path, out_dir: Path, chat_template: str, end_of_turn: str) -> dict[str, Any]:
    """Write a plain HF model + tokenizer for ``gguf`` into ``out_dir``; return facts for the marker.

    ``chat_template`` is installed on the tokenizer (saved as chat_template.jinja) and
    ``end_of_turn`` is added to the generation config's eos ids, so ``generate`` stops after a turn.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    gguf = Path(gguf)
    size = gguf.stat().st_size
    console.print(f"[bold]converting[/bold] {gguf} ({size / 2**20:.0f} MiB) to a plain HF folder")
    with console.status("hashing the GGUF file"):
        sha = sha256_file(gguf)
    _step(f"sha256 {sha[:16]}...", t0)

    with console.status("reading the tokenizer from GGUF (a large vocabulary takes ~20 s)"):
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _step(f"tokenizer: {len(tok)} tokens", t0)

    with console.status("dequantizing the GGUF weights (slow: 15-150 s on a CPU)"):
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    gguf_model.eval()
    _step(f"GGUF model loaded: {type(gguf_model).__name__}", t0)
    check_ids = tok(CHECK_TEXT, return_tensors="pt").input_ids
    want = gguf_model(check_ids).logits  # reference for the check of the written folder, below

    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the only thing that made the model refuse to save
    config.dtype = torch.float32
    with console.status("building the plain model"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
        plain.tie_weights()
    # lm_head may be absent from a tied checkpoint; anything else missing would be a real gap
    missing = [k for k in missing if not (config.tie_word_embeddings and k.startswith("lm_head."))]
    if missing or unexpected:
        raise RuntimeError(f"GGUF state dict does not fit {type(plain).__name__}: missing {missing}, "
                           f"unexpected {unexpected}")
    plain.eval()
    del gguf_model  # its tensors were copied; keep at most two float32 copies alive (Gemma: ~1 GiB each)

    eot_id = tok.convert_tokens_to_ids(end_of_turn)
    eos = [i for i in dict.fromkeys([tok.eos_token_id, eot_id]) if i is not None and i != tok.unk_token_id]
    plain.generation_config.eos_token_id = eos
    plain.generation_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else eos[0]

    tok.chat_template = chat_template
    with console.status("saving safetensors + tokenizer"):
        plain.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    _step("saved", t0)

    with console.status("checking the saved model's logits against the GGUF model's"):
        architecture, params = type(plain).__name__, plain.num_parameters()
        del plain
        reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
        got = reloaded(check_ids).logits
        diff = (got - want).abs().max().item()
    if not diff <= LOGITS_ATOL:
        raise RuntimeError(f"converted model's logits differ from the GGUF model's by {diff:.3g}")
    saved = AutoTokenizer.from_pretrained(out_dir)
    check_saved_tokenizer(saved, tok, gguf)
    check_saved_end_token(saved, gguf)
    _step(f"logits match (max |diff| = {diff:.2g})", t0)

    return {
        "gguf": {"file": gguf.name, "sha256": sha, "size": size},
        "architecture": architecture,
        "model_type": config.model_type,
        "params": params,
        "vocab": len(tok),
        "dtype": "float32",
        "logits_check": {"text": CHECK_TEXT, "max_abs_diff": diff},
        "convert_s": round(time.perf_counter() - t0, 1),
    }
