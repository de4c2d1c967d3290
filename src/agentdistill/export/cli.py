"""`agentdistill export`: the trained agent as a merged HF folder, a GGUF file, or a GGUF + Ollama Modelfile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentdistill.cli_options import RunDir
from agentdistill.errors import UserError

TARGETS = ("hf", "gguf", "ollama")


def export(
    run: RunDir,
    to: Annotated[str, typer.Option("--to", help="hf (merged safetensors folder), gguf, or ollama "
                                    "(GGUF + Modelfile).")] = "gguf",
    adapter: Annotated[Path | None, typer.Option("--adapter", help="Adapter folder (absolute or relative to the "
                                                 "run); default: adapters/<student>, then adapters/<student>-uld.")
                       ] = None,
    quant: Annotated[str | None, typer.Option("--quant", help="GGUF type: f16, q8_0 or q4_k_m; "
                                              "default: the config's export.gguf_quant. With --lora, the "
                                              "base's type where the base is converted here.")] = None,
    lora: Annotated[bool, typer.Option("--lora", help="Keep the adapter apart: the base's GGUF (the registry's "
                                       "own file where it has one) and the adapter as an f16 LoRA GGUF that "
                                       "llama.cpp applies at run time. At 4 bits it keeps the adapter's "
                                       "accuracy where a merged file loses it.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder; default <run>/export/hf or "
                                             "<run>/export/gguf.")] = None,
) -> None:
    """Merge the run's LoRA adapter into its base and write it for other runtimes.

    --to hf: a safetensors folder with tokenizer and chat template (observation role) for transformers.
    --to gguf: one GGUF file for llama.cpp, converted by llama.cpp's own converter, quantized in process;
    a Modelfile is written beside it when export.ollama is true. --to ollama: GGUF and Modelfile.
    --lora (gguf, ollama): the base GGUF and <adapter>-lora-f16.gguf instead of one merged file; pass the
    LoRA file as --model to eval, chat and serve (its .json names the base), or use the Modelfile.
    """
    from agentdistill.config import load_run_config

    if to not in TARGETS:
        raise UserError(f"unknown export target {to!r}.", hint=f"Use --to with one of: {', '.join(TARGETS)}.")
    cfg = load_run_config(run)
    if to == "hf":
        if quant is not None or lora:
            raise UserError(f"{'--quant' if quant else '--lora'} applies to --to gguf and --to ollama, not to the "
                            "float32 HF folder.")
        from agentdistill.export.merge import export_hf

        export_hf(run, adapter, out)
        return
    from agentdistill.export.gguf import check_quant, export_gguf
    from agentdistill.export.ollama import write_modelfile
    from agentdistill.models.registry import resolve

    if lora:
        from agentdistill.export.lora import export_lora_gguf
        from agentdistill.llm.llamacpp import model_and_lora

        adapter_gguf: Path | None = export_lora_gguf(run, adapter, quant and check_quant(quant), out)
        gguf, _ = model_and_lora(adapter_gguf)
    else:
        adapter_gguf = None
        gguf = export_gguf(run, adapter, check_quant(quant or cfg.export.gguf_quant), out)
    if to == "ollama" or cfg.export.ollama:
        modelfile = write_modelfile(run, gguf, resolve(str(gguf)).family, adapter_gguf)
        typer.echo(f"Ollama: cd {modelfile.parent} && ollama create {modelfile.stem} -f {modelfile.name}")
