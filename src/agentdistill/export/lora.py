"""The adapter kept apart: the base model's GGUF and the adapter as an f16 LoRA GGUF that llama.cpp applies
at run time (``llama-cli -m BASE --lora LORA``, Ollama's ``ADAPTER``, ``--model <lora>.gguf`` here).

    base GGUF   the registry's own GGUF of the base, as it is (the bundled SmolLM2's Q4_1 file), or the
                base converted by llama.cpp's convert_hf_to_gguf.py and quantized to --quant
    LoRA GGUF   the PEFT adapter converted by llama.cpp's convert_lora_to_gguf.py, f16 (a few MiB)

Why: a merged model quantized to 4 bits rounds the adapter's small updates together with the base
weights, and where the base itself came from a 4-bit GGUF it rounds them a second time. Kept apart, the
base keeps the exact 4-bit weights it was trained against and the update stays in f16 (docs/results.md
measures both forms against the adapter).

The base file gets the project's chat template for the family (observation role included) and no BOS
added, as a merged export does, so a llama.cpp server using the file's template renders the turns the
student was trained on; its tensors are copied unchanged. ``<lora>.json`` beside the LoRA names the base
file, which is how ``make_llm`` finds the base when given the LoRA GGUF.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agentdistill.export.gguf import (
    LORA_CONVERTER,
    check_quant,
    console,
    converter_folder,
    find_converter,
    gguf_from_folder,
    llama_cpp_template,
    run_converter,
    save_for_converter,
)
from agentdistill.export.merge import adapter_facts, find_adapter
from agentdistill.llm.llamacpp import LORA_BASE_KEY
from agentdistill.run_layout import RunLayout, gguf_name

LORA_QUANT = "lora-f16"  # the LoRA GGUF's name is gguf_name(<adapter>, LORA_QUANT)


def export_lora_gguf(run_dir: Path, adapter: Path | None = None, quant: str | None = None,
                     out_dir: Path | None = None) -> Path:
    """Write the base GGUF and ``<name>-lora-f16.gguf`` (with ``<name>-lora-f16.json``) into ``out_dir``
    (default ``<run>/export/gguf``); return the LoRA GGUF's path.

    ``quant`` is the base file's type when the base is converted here (default q8_0); a registry base
    that comes as a GGUF is used as it is, since quantizing its weights again would round them twice.
    """
    from agentdistill.models.registry import prepare, split_adapter

    t0 = time.perf_counter()
    find_converter()  # fail before any slow work when it is missing
    adapter = find_adapter(run_dir, adapter)
    base_name, _ = split_adapter(str(adapter))
    out_dir = Path(out_dir) if out_dir is not None else RunLayout(run_dir).export_gguf
    out_dir.mkdir(parents=True, exist_ok=True)
    base = base_gguf(base_name, quant, out_dir)
    lora = out_dir / gguf_name(adapter.name, LORA_QUANT)
    run_converter(LORA_CONVERTER, ["--base", str(prepare(base_name)), str(adapter)], lora,
                  "converting the adapter to a LoRA GGUF")
    facts = {"adapter": str(adapter), **adapter_facts(adapter), "quant": LORA_QUANT, LORA_BASE_KEY: base.name,
             "size_bytes": lora.stat().st_size, "base_size_bytes": base.stat().st_size}
    lora.with_suffix(".json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    console.print(f"LoRA GGUF written to {lora} ({facts['size_bytes'] / 2**20:.1f} MiB) for the base {base.name} "
                  f"({facts['base_size_bytes'] / 2**20:.0f} MiB), {time.perf_counter() - t0:.0f} s")
    return lora


def base_gguf(base_name: str, quant: str | None, out_dir: Path) -> Path:
    """The base model's GGUF in ``out_dir``: the registry's own file re-labelled with the project's chat
    template, or the base converted and quantized to ``quant``. Reused when an earlier export wrote it."""
    from agentdistill.models.registry import gguf_path, load_model, resolve

    family = resolve(base_name).family
    template = llama_cpp_template(family)
    source = gguf_path(base_name)
    if source is not None:
        if quant is not None:
            console.print(f"[yellow]note:[/yellow] the base is {source.name} as the registry has it; --quant "
                          "applies to a base converted here, and this one's weights are already quantized.")
        target = out_dir / source.name
        if _has_chat_template(target, template):
            return target
        return with_chat_template(source, target, template)
    quant = check_quant(quant or "q8_0")
    target = out_dir / gguf_name(Path(resolve(base_name).name).name, quant)
    if _has_chat_template(target, template):
        return target
    with converter_folder(target) as hf_dir:
        model, tokenizer = load_model(base_name, device="cpu")
        facts = {"base_model": base_name, "family": family, "quant": quant}
        save_for_converter(model, tokenizer, family, facts, hf_dir)
        del model  # the converter loads the folder in another process
        gguf_from_folder(hf_dir, target, quant, facts)
    return target


def with_chat_template(source: Path, target: Path, template: str) -> Path:
    """Copy the GGUF ``source`` to ``target`` with ``template`` as its chat template and no BOS added; the
    tensors are copied byte for byte (gguf-py's gguf_new_metadata)."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(source, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    writer = gguf.GGUFWriter(tmp, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    new = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, template),
           gguf.Keys.Tokenizer.ADD_BOS: MetadataDetails(gguf.GGUFValueType.BOOL, False)}
    try:
        with console.status(f"copying {source.name} with the project's chat template"):
            copy_with_new_metadata(reader, writer, new, [])
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _has_chat_template(path: Path, template: str) -> bool:
    if not path.is_file():
        return False
    import gguf

    try:
        field = gguf.GGUFReader(path, "r").get_field(gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    except (ValueError, OSError):  # a truncated or foreign file is written again
        return False
    return field is not None and field.contents() == template
