"""Language-model backends behind one interface (``llm.base.LLM``), and ``make_llm`` to pick one by name.

``make_llm(model, run_dir, cfg)`` understands every way a command line names a model:

- ``"rule"``: the offline teacher of the run's domain pack (agentdistill.domains);
- ``"http://..."`` / ``"https://..."``: an OpenAI-compatible server (``served_model`` names the model);
- ``"student"`` / ``"teacher"``: the run config's ``models.student`` / ``models.teacher``;
- a folder (absolute, or relative to the run directory, such as ``adapters/smollm2-135m``): a PEFT
  adapter (it records its base model) or a plain Hugging Face model folder;
- a path ending in ``.gguf``, or a registry name with ``@gguf`` (``smollm2-135m@gguf``): that GGUF file run in
  process by llama.cpp (llm/llamacpp.py), the fast path on a CPU;
- anything else: a registry name (``agentdistill models list``) or a Hugging Face id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.llm.base import LLM, BackendError, Completion, GenerationRequest

__all__ = ["LLM", "BackendError", "Completion", "GenerationRequest", "make_llm", "make_teacher_llm"]


def _model_folder(model: str, run_dir: Path | None) -> Path | None:
    """``model`` as an existing folder, trying the run directory first for relative names."""
    return next((p.resolve() for p in _candidates(model, run_dir) if p.is_dir()), None)


def _candidates(model: str, run_dir: Path | None) -> list[Path]:
    path = Path(model).expanduser()
    return [path] if path.is_absolute() else [*([Path(run_dir) / path] if run_dir else []), path.absolute()]


def _gguf_file(model: str, run_dir: Path | None) -> Path:
    """The GGUF file of ``model``: a ``.gguf`` path (a relative one tried in the run directory first), or a
    registry name with ``@gguf`` (the GGUF its weights come from, such as the bundled student's)."""
    if model.endswith("@gguf"):
        from agentdistill.models.registry import gguf_path

        found = gguf_path(model.removesuffix("@gguf"))
        if found is None:
            raise UserError(f"{model.removesuffix('@gguf')!r} has no GGUF file.",
                            hint="Export one (agentdistill export --to gguf) and pass the .gguf path.")
        return found
    path = Path(model).expanduser()
    candidates = [path] if path.is_absolute() else [*([Path(run_dir) / path] if run_dir else []), path]
    found = next((p.resolve() for p in candidates if p.is_file()), None)
    if found is None:
        raise UserError(f"GGUF model {model} does not exist.", hint="Pass the path of a .gguf file.")
    return found


def _rule_teacher(run_dir: Path | None, cfg: RunConfig) -> LLM:
    from agentdistill.domains import offline_pack

    return offline_pack(cfg).offline_teacher(run_dir, cfg)


def make_llm(model: str, run_dir: Path | None, cfg: RunConfig, *, served_model: str | None = None,
             batch_size: int | None = None, device: str | None = None) -> LLM:
    """The backend for ``model`` (see the module docstring for the accepted forms)."""
    if model == "rule":
        return _rule_teacher(run_dir, cfg)
    if model.startswith(("http://", "https://")):
        from agentdistill.llm.openai_http import OpenAIBackend, normalize_base_url

        t = cfg.teacher
        same_server = t.base_url is not None and normalize_base_url(t.base_url) == normalize_base_url(model)
        backend = OpenAIBackend(
            model, served_model or (t.model if same_server else None), api_key=os.environ.get(t.api_key_env),
            concurrency=t.concurrency, timeout_s=t.timeout_s, max_retries=t.max_retries,
        )
        backend.check()  # an unreachable server or unknown model fails here, before any work starts
        return backend
    model = {"student": cfg.models.student, "teacher": cfg.models.teacher}.get(model, model)
    if model.endswith((".gguf", "@gguf")):
        from agentdistill.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend(_gguf_file(model, run_dir), name=model)
    from agentdistill.llm.local import LocalBackend
    from agentdistill.models.registry import looks_like_path, missing_path

    folder = _model_folder(model, run_dir)
    if folder is None and looks_like_path(model, run_dir):  # else "adapters/x" would be asked of the hub
        raise missing_path(model, _candidates(model, run_dir))
    return LocalBackend(str(folder) if folder else model, batch_size=batch_size or cfg.eval.batch_size,
                        device=device, dtype=generation_dtype(cfg, device))


def generation_dtype(cfg: RunConfig, device: str | None) -> Any:
    """The torch dtype a local model generates in: bf16 where ``models.generation_bf16`` or the hardware says
    so (see models/precision.py), else float32."""
    import torch

    from agentdistill.models.precision import native_bf16

    cuda = device.startswith("cuda") if device else torch.cuda.is_available()
    bf16 = cfg.models.generation_bf16
    return torch.bfloat16 if (native_bf16(cuda) if bf16 is None else bf16) else torch.float32


def make_teacher_llm(cfg: RunConfig, run_dir: Path | None) -> LLM:
    """The LLM that writes questions and traces, as ``cfg.teacher`` configures it."""
    t = cfg.teacher
    if t.kind == "rule":
        return _rule_teacher(run_dir, cfg)
    if t.kind == "openai":
        if not t.base_url:
            raise UserError("teacher.kind is 'openai' but teacher.base_url is not set.",
                            hint="Set teacher.base_url (e.g. http://127.0.0.1:8080/v1) and teacher.model.")
        return make_llm(t.base_url, run_dir, cfg, served_model=t.model)
    if not t.model:
        raise UserError("teacher.kind is 'local' but teacher.model is not set.",
                        hint="Set teacher.model to a registry name, Hugging Face id or adapter folder.")
    return make_llm(t.model, run_dir, cfg)
