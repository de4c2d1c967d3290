"""A run's adapter merged into its base and written as one GGUF file for llama.cpp and Ollama.

    adapter + base --merge--> HF folder (temp) --llama.cpp's convert_hf_to_gguf.py--> f16 GGUF
                                                --llama_model_quantize (in process)--> q8_0 / q4_k_m GGUF

The converter is llama.cpp's own, taken from the source distribution of the llama-cpp-python version
that is installed (its ``vendor/llama.cpp`` holds ``convert_hf_to_gguf.py``, ``conversion/`` and the
``gguf-py`` it was written against), so the converter that writes the file and the runtime that reads
it come from one llama.cpp commit (docs/design.md, "GGUF export"). The sdist is fetched with pip when
agentdistill is installed; export only unpacks it, nothing is downloaded at run time. The converter
runs in a subprocess so that its ``gguf`` package does not meet the installed one in this process.

The GGUF carries the project's chat template for the model's family, observation role included, with
the transformers-only ``{% generation %}`` markers removed (they select the trained tokens and render
nothing; llama.cpp's template engines do not know the tag), and ``add_bos_token`` false: the templates
that need a BOS write it themselves, as the prompts in training did.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from agentdistill.errors import UserError
from agentdistill.export.merge import adapter_facts, find_adapter, load_merged, save_merged, write_folder_atomically
from agentdistill.run_layout import RunLayout, gguf_name

console = Console(stderr=True)
QUANTS = ("f16", "q8_0", "q4_k_m")
CONVERTER = "convert_hf_to_gguf.py"
LORA_CONVERTER = "convert_lora_to_gguf.py"  # a PEFT adapter as a LoRA GGUF (export/lora.py)
CONVERTER_ENV = "AGENTDISTILL_LLAMA_CPP"  # a llama.cpp source tree to take the converter from instead
# What of the sdist's vendor/llama.cpp the converters need.
CONVERTER_PARTS = (CONVERTER, LORA_CONVERTER, "conversion/", "gguf-py/")
_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def llama_cpp_template(family: str) -> str:
    """The family's chat template without its ``{% generation %}`` markers: the same text for any messages."""
    from agentdistill.models.templates import template_text

    return _GENERATION_TAG.sub("", template_text(family))


def llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError as e:
        raise UserError("GGUF export needs llama-cpp-python, which is not installed.",
                        hint='pip install -c constraints.txt -e ".[llamacpp]" (it compiles llama.cpp; see README.md).'
                        ) from e


def sdist_hint(version: str) -> str:
    from agentdistill.models.cache import cache_root

    return (f"pip download --no-deps --no-binary :all: llama-cpp-python=={version} -d {cache_root() / 'sdist'} "
            f"fetches the converter once (llama-cpp-python's source holds llama.cpp's converter), or set "
            f"{CONVERTER_ENV} to a llama.cpp source tree.")


def find_converter() -> Path:
    """The folder holding llama.cpp's converters, unpacked once from the sdist if need be.

    Looked for in ``$AGENTDISTILL_LLAMA_CPP``, then ``<cache>/llama.cpp/<version>/``, then unpacked from
    ``<cache>/sdist/llama_cpp_python-<version>.tar.gz`` (``<version>``: the installed llama-cpp-python's).
    """
    from agentdistill.models.cache import cache_root, locked

    if os.environ.get(CONVERTER_ENV):
        tree = Path(os.environ[CONVERTER_ENV]).expanduser()
        if not (tree / CONVERTER).is_file():
            raise UserError(f"{CONVERTER_ENV}={tree} holds no {CONVERTER}.",
                            hint="Point it at a llama.cpp source tree.")
        return tree
    version = llama_cpp_version()
    dest = cache_root() / "llama.cpp" / version

    def complete() -> bool:  # a folder unpacked by an older agentdistill may lack the LoRA converter
        return all((dest / script).is_file() for script in (CONVERTER, LORA_CONVERTER))

    if complete():
        return dest
    sdist = cache_root() / "sdist" / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file():
        raise UserError(f"llama.cpp's GGUF converter is not here: no {dest / CONVERTER} and no {sdist} to take "
                        "it from.", hint=sdist_hint(version))
    with locked(dest):
        if not complete():
            with console.status(f"unpacking llama.cpp's converter from {sdist.name}"):
                write_folder_atomically(dest, lambda tmp: _unpack_converter(sdist, tmp))
    return dest


def _unpack_converter(sdist: Path, out: Path) -> None:
    with tarfile.open(sdist) as tar:
        root = f"{tar.getmembers()[0].name.split('/')[0]}/vendor/llama.cpp/"
        members = [m for m in tar.getmembers() if m.name.startswith(root)
                   and m.name[len(root):].startswith(CONVERTER_PARTS) and (m.isfile() or m.isdir())]
        for m in members:
            m.name = m.name[len(root):]
        if not any(m.name == CONVERTER for m in members):
            raise UserError(f"{sdist} holds no vendor/llama.cpp/{CONVERTER}.", hint="Download the sdist again.")
        tar.extractall(out, members=members, filter="data")


def run_converter(script: str, args: list[str], out_file: Path, what: str) -> Path:
    """Run llama.cpp's converter ``script`` with ``args`` to write an f16 ``out_file``, written only when the
    conversion succeeded."""
    tree = find_converter()
    if not (tree / script).is_file():
        raise UserError(f"{tree} holds no {script}.", hint=f"Point {CONVERTER_ENV} at a newer llama.cpp source tree.")
    tmp = out_file.with_name(f".tmp-{os.getpid()}-{out_file.name}")
    # offline: the converters read only local folders; gguf-py beside them is imported unless NO_LOCAL_GGUF is set
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("NO_LOCAL_GGUF", None)
    cmd = [sys.executable, str(tree / script), *args, "--outtype", "f16", "--outfile", str(tmp)]
    with console.status(f"{what} with llama.cpp's {script}"):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise UserError(f"llama.cpp's {script} failed (exit {proc.returncode}):\n{tail}",
                        hint="Its architecture may be newer than this llama.cpp; see the message above.")
    os.replace(tmp, out_file)
    return out_file


def convert_to_f16(hf_dir: Path, out_file: Path) -> Path:
    """An HF model folder as an f16 GGUF."""
    return run_converter(CONVERTER, [str(hf_dir)], out_file, "converting to GGUF f16")


def quantize(src: Path, dst: Path, quant: str, threads: int | None = None) -> Path:
    """Quantize an f16 GGUF to ``quant`` (q8_0, q4_k_m) with llama.cpp in this process."""
    import llama_cpp

    ftypes = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[quant]
    params.nthread = threads or max(1, (os.cpu_count() or 1) // 2)
    tmp = dst.with_name(f".tmp-{os.getpid()}-{dst.name}")
    with console.status(f"quantizing to {quant}"):
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise UserError(f"llama.cpp could not quantize {src.name} to {quant} (return code {rc}).",
                        hint="Try --quant q8_0 or f16.")
    os.replace(tmp, dst)
    return dst


def check_quant(quant: str) -> str:
    if quant not in QUANTS:
        raise UserError(f"unknown GGUF quantization {quant!r}.", hint=f"Use one of: {', '.join(QUANTS)}.")
    return quant


def export_gguf(run_dir: Path, adapter: Path | None = None, quant: str = "q8_0", out_dir: Path | None = None) -> Path:
    """Merge the run's adapter (see ``find_adapter``) into its base and write ``<out_dir>/<name>-<quant>.gguf``.

    ``out_dir`` defaults to ``<run>/export/gguf``. Returns the GGUF's path; ``<name>-<quant>.json`` beside
    it records the adapter, its training facts and the file's size.
    """
    t0 = time.perf_counter()
    check_quant(quant)
    find_converter()  # fail before the slow merge when it is missing
    adapter = find_adapter(run_dir, adapter)
    out_dir = Path(out_dir) if out_dir is not None else RunLayout(run_dir).export_gguf
    target = out_dir / gguf_name(adapter.name, quant)
    with converter_folder(target) as hf_dir:
        model, tokenizer, family = load_merged(adapter)
        facts = {"adapter": str(adapter), "family": family, **adapter_facts(adapter), "quant": quant}
        save_for_converter(model, tokenizer, family, facts, hf_dir)
        del model  # the converter loads the folder in another process
        gguf_from_folder(hf_dir, target, quant, facts)
    console.print(f"GGUF written to {target} ({facts['size_bytes'] / 2**20:.0f} MiB, {quant}, "
                  f"{time.perf_counter() - t0:.0f} s)")
    return target


@contextmanager
def converter_folder(target: Path) -> Iterator[Path]:
    """A temp folder beside ``target`` for the HF model the converter reads, removed afterwards."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".tmp-{target.stem}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "hf").mkdir(parents=True)
    try:
        yield work / "hf"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def save_for_converter(model: Any, tokenizer: Any, family: str, facts: dict[str, Any], hf_dir: Path) -> None:
    """``model`` saved for the converter with the family's chat template, llama.cpp told to add no BOS."""
    with console.status("saving the model for the converter"):
        save_merged(model, tokenizer, hf_dir, llama_cpp_template(family), facts)
    _no_bos_added(hf_dir)


def gguf_from_folder(hf_dir: Path, target: Path, quant: str, facts: dict[str, Any]) -> Path:
    """The GGUF file ``target`` at ``quant`` from the HF folder ``hf_dir``; ``facts`` and the file's size go
    to ``<target>.json``."""
    f16 = convert_to_f16(hf_dir, hf_dir.parent / f"{target.stem}-f16.gguf")
    if quant == "f16":
        os.replace(f16, target)
    else:
        quantize(f16, target, quant)
    facts["size_bytes"] = target.stat().st_size
    target.with_suffix(".json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return target


def _no_bos_added(hf_dir: Path) -> None:
    """Tell the converter that llama.cpp must not prepend a BOS: the chat template writes it where needed."""
    path = hf_dir / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    cfg.update(add_bos_token=False, add_eos_token=False)
    path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
