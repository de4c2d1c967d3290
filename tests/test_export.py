"""`agentdistill export`: a merged HF folder, a GGUF for llama.cpp (f16 greedy parity with the merged model,
q4_k_m smaller and working) and an Ollama Modelfile, from a small LoRA adapter made here on the bundled
student with random weights, so that merging really changes what the model says."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jinja2
import pytest

from agentdistill.errors import UserError
from agentdistill.export.gguf import CONVERTER_ENV, check_quant, export_gguf, find_converter, llama_cpp_template
from agentdistill.export.merge import export_hf, find_adapter
from agentdistill.export.ollama import TEMPLATES, modelfile_text, write_modelfile
from agentdistill.models.templates import FAMILIES, template_text, to_chat_messages
from agentdistill.run_layout import MODELFILE_SUFFIX

STUDENT = "smollm2-135m"
PARITY_NEW_TOKENS = 32
LOGIT_PROMPTS = 5  # each a prefill of the whole agent prompt, twice (with and without the LoRA)
# 20 prefills of an agent prompt by llama.cpp and transformers: a few minutes on 2 idle cores, but on 2 cores
# shared with other work llama.cpp prefilled 10 tokens/s and the test passed pytest's default 900 s.
LOADED_MACHINE_TIMEOUT_S = 2400
# A whole agent conversation in canonical form: every role the student sees.
CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant with tools."},
    {"role": "user", "content": "How many days of annual leave after 2 years?"},
    {"role": "assistant", "thought": "I will use annual_leave.",
     "tool_calls": [{"name": "annual_leave", "arguments": {"months_of_service": 24}}]},
    {"role": "tool", "name": "annual_leave", "content": "30 days (Article 29)"},
    {"role": "assistant", "thought": "I have the answer.", "content": "30 days, under Article 29."},
]
QUESTIONS = [
    "How many days of annual leave does a worker get after 2 years?",
    "What is the gratuity for 5 years of service on a basic salary of 8000 AED?",
    "Hello!",
    "What does Article 51 of the labour law say?",
    "How long is the notice period if my contract says 60 days?",
    "Convert 100 km to miles.",
    "What is 17 * 23?",
    "How many days are there between 2024-01-01 and 2024-03-01?",
    "Can my employer keep my passport?",
    "What overtime pay do I get for 10 hours at night on a 6000 AED salary?",
    "Is a domestic worker entitled to sick leave?",
    "Who are you?",
    "What is the probation period in the UAE?",
    "Add 45 days to 2025-06-30.",
    "Summarise the rules on maternity leave.",
    "What happens if I resign during probation?",
    "Explain end-of-service gratuity in one sentence.",
]


def _plain_jinja(template: str, messages: list[dict[str, str]]) -> str:
    """Render with plain Jinja2, as llama-cpp-python and other non-transformers runtimes do."""
    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True)


def _blocks_balanced(go_template: str) -> bool:
    """Every Go template range/if/with block is closed by an end, in order (Ollama is not installed here)."""
    depth = 0
    for word in re.findall(r"\{\{-?\s*(range|if|with|end)\b", go_template):
        depth += -1 if word == "end" else 1
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_llama_cpp_template_renders_what_the_training_template_renders(family: str):
    from transformers.utils.chat_template_utils import render_jinja_template

    messages = to_chat_messages(CONVERSATION)
    training, _ = render_jinja_template([messages], chat_template=template_text(family), add_generation_prompt=True)
    stripped = llama_cpp_template(family)
    assert not re.search(r"\{%-?\s*(end)?generation", stripped)
    assert _plain_jinja(stripped, messages) == training[0]
    assert "observation" in training[0] or "ipython" in training[0]  # the tool result has its own turn


def test_an_unknown_quantization_is_refused_with_the_choices():
    with pytest.raises(UserError, match="q4_k_m"):
        check_quant("q3_k")


def test_a_run_without_an_adapter_says_where_it_looked_and_how_to_make_one(tmp_path: Path):
    with pytest.raises(UserError) as err:
        find_adapter(tmp_path)
    assert str(tmp_path / "adapters" / STUDENT) in err.value.message
    assert str(tmp_path / "adapters" / f"{STUDENT}-uld") in err.value.message
    assert "agentdistill sft" in err.value.hint


def test_without_the_converter_export_says_how_to_fetch_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AGENTDISTILL_CACHE", str(tmp_path))
    monkeypatch.delenv(CONVERTER_ENV, raising=False)
    with pytest.raises(UserError) as err:
        find_converter()
    assert "pip download --no-deps --no-binary :all: llama-cpp-python==" in err.value.hint
    assert str(tmp_path / "sdist") in err.value.hint


def test_converters_are_unpacked_from_the_sdist_even_over_a_folder_that_lacks_the_lora_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A cache unpacked by an older agentdistill holds convert_hf_to_gguf.py alone; both converters must come
    from the llama-cpp-python sdist the README's install downloads."""
    from agentdistill.export.gguf import CONVERTER, LORA_CONVERTER, llama_cpp_version
    from agentdistill.models.cache import cache_root

    version = llama_cpp_version()
    sdist = cache_root() / "sdist" / f"llama_cpp_python-{version}.tar.gz"
    assert sdist.is_file(), f"the README's install downloads {sdist}"
    monkeypatch.setenv("AGENTDISTILL_CACHE", str(tmp_path))
    monkeypatch.delenv(CONVERTER_ENV, raising=False)
    (tmp_path / "sdist").mkdir()
    (tmp_path / "sdist" / sdist.name).symlink_to(sdist)
    old = tmp_path / "llama.cpp" / version
    old.mkdir(parents=True)
    (old / CONVERTER).write_text("# an older unpack\n")
    tree = find_converter()
    assert tree == old
    assert (tree / LORA_CONVERTER).is_file() and (tree / "gguf-py").is_dir()
    assert (tree / CONVERTER).read_text() != "# an older unpack\n"


def test_modelfile_names_the_gguf_the_roles_the_stops_and_greedy_decoding():
    text = modelfile_text("agent-q4_k_m.gguf", "chatml", "You are an agent.\nTools:\n- calculator(expression: str)")
    lines = text.splitlines()
    assert lines[0] == "FROM ./agent-q4_k_m.gguf"
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert template == TEMPLATES["chatml"]
    assert 'if eq .Role "tool" }}observation\nObservation: {{ .Content }}' in template  # as agent.wire renders it
    assert template.endswith("<|im_start|>assistant\n")  # the reply starts a new assistant turn
    assert _blocks_balanced(template)
    assert 'SYSTEM """You are an agent.\nTools:\n- calculator(expression: str)"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in lines and 'PARAMETER stop "Observation:"' in lines
    assert "PARAMETER temperature 0" in lines and "PARAMETER repeat_penalty 1.0" in lines


def test_modelfile_of_a_lora_export_applies_the_adapter_to_the_base():
    lines = modelfile_text("base.Q4_1.gguf", "chatml", "system", "agent-lora-f16.gguf").splitlines()
    assert lines[:2] == ["FROM ./base.Q4_1.gguf", "ADAPTER ./agent-lora-f16.gguf"]
    assert not any(line.startswith("ADAPTER") for line in modelfile_text("m.gguf", "chatml", "system").splitlines())


def test_lora_is_refused_for_the_hf_folder(tmp_path: Path):
    from typer.testing import CliRunner

    from agentdistill.cli import app

    result = CliRunner().invoke(app, ["export", "--run", str(tmp_path), "--to", "hf", "--lora"])
    assert isinstance(result.exception, UserError) and "--lora applies to --to gguf" in str(result.exception)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_an_ollama_template_with_its_end_of_turn(family: str):
    from agentdistill.models.templates import END_OF_TURN

    text = modelfile_text("m.gguf", family, "system")
    assert f'PARAMETER stop "{END_OF_TURN[family]}"' in text
    assert END_OF_TURN[family] in TEMPLATES[family] and '"tool"' in TEMPLATES[family]
    assert TEMPLATES[family].count("{{") == TEMPLATES[family].count("}}")
    assert _blocks_balanced(TEMPLATES[family])


# ---- slow: a real adapter merged, converted by llama.cpp's converter, run by llama.cpp ----------------------


def _make_adapter(run_dir: Path, base_name: str = STUDENT) -> Path:
    """A LoRA adapter with random A and B (init_lora_weights=False), B scaled so the model still writes text,
    on ``base_name`` (a registry name or a model folder)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from agentdistill.models.registry import prepare

    out = run_dir / "adapters" / STUDENT
    folder = prepare(base_name) if base_name == STUDENT else base_name
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
                      init_lora_weights=False)
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.3)
    model.save_pretrained(out)
    cfg_file = out / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = base_name  # as `agentdistill sft` records it
    cfg_file.write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("export-run")
    _make_adapter(run)
    return run


@pytest.fixture(scope="module")
def merged(run_dir: Path) -> Path:
    return export_hf(run_dir)


@pytest.fixture(scope="module")
def gguf_f16(run_dir: Path) -> Path:
    return export_gguf(run_dir, quant="f16")


def _prompts(tokenizer) -> list[list[int]]:
    """20 agent prompts: the run's system prompt with its tools, a question, and for some a step and observation."""
    from agentdistill.agent.prompt import system_prompt
    from agentdistill.config import RunConfig
    from agentdistill.models.templates import render_prompt
    from agentdistill.tools import load_tools

    system = {"role": "system", "content": system_prompt(load_tools(RunConfig(), None))}
    conversations = [[system, {"role": "user", "content": q}] for q in QUESTIONS]
    conversations += [[system, *CONVERSATION[1:4]], [system, *CONVERSATION[1:]],
                      [system, *CONVERSATION[1:], {"role": "user", "content": "And after 6 months?"}]]
    assert len(conversations) == 20
    return [tokenizer(render_prompt(tokenizer, c), add_special_tokens=False).input_ids for c in conversations]


@pytest.mark.slow
def test_merged_folder_is_a_plain_model_that_differs_from_its_base(merged: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentdistill.models.registry import prepare, resolve

    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    assert (merged / "chat_template.jinja").read_text() == template_text("chatml")
    assert resolve(str(merged)).family == "chatml"
    tok = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(prepare(STUDENT), dtype=torch.float32).eval()
    ids = torch.tensor([_prompts(tok)[0]])
    with torch.inference_mode():
        got, before = model(ids).logits[0], base(ids).logits[0]
    changed = (got.argmax(-1) != before.argmax(-1)).float().mean().item()
    print(f"merged vs base: next-token argmax differs at {changed:.1%} of positions, "
          f"mean |logit diff| {(got - before).abs().mean().item():.3f}")
    assert changed > 0.05


def _greedy_agreement(merged: Path, gguf: Path, lora: Path | None = None) -> tuple[float, int]:
    """``(per-token agreement, replies identical)`` of llama.cpp's greedy replies to the 20 prompts with the
    merged model's choices.

    One forward pass of the merged model over prompt + reply gives its greedy choice after every prefix of
    the reply; where all agree, its own greedy reply is this one, token for token.
    """
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentdistill.llm.llamacpp import default_threads

    tok = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    llm = Llama(str(gguf), n_ctx=2048, n_threads=default_threads(), lora_path=str(lora) if lora else None,
                seed=0, verbose=False)
    same = total = whole = 0
    try:
        for ids in _prompts(tok):
            assert llm.tokenize(tok.decode(ids).encode(), add_bos=False, special=True) == ids  # tokenized alike
            reply = []
            for t in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
                reply.append(t)
                if t == tok.eos_token_id or len(reply) == PARITY_NEW_TOKENS:
                    break
            with torch.inference_mode():
                chosen = model(torch.tensor([ids + reply])).logits[0, len(ids) - 1 : -1].argmax(-1).tolist()
            same += sum(a == b for a, b in zip(chosen, reply, strict=True))
            total += len(reply)
            whole += chosen == reply
    finally:
        llm.close()
    return same / total, whole


@pytest.mark.slow
@pytest.mark.timeout(LOADED_MACHINE_TIMEOUT_S)
def test_f16_gguf_greedy_tokens_equal_the_merged_models(merged: Path, gguf_f16: Path):
    """llama.cpp writes greedy replies; the merged model, shown each reply, would have chosen the same tokens."""
    from gguf import GGUFReader

    fields = GGUFReader(gguf_f16).fields
    assert fields["tokenizer.chat_template"].contents() == llama_cpp_template("chatml")
    assert fields["tokenizer.ggml.add_bos_token"].contents() is False
    agreement, whole = _greedy_agreement(merged, gguf_f16)
    print(f"f16 GGUF (llama.cpp) vs merged float32 model (transformers), 20 prompts: "
          f"per-token agreement {agreement:.4f}, {whole}/20 replies identical")
    assert agreement >= 0.99


@pytest.mark.slow
@pytest.mark.timeout(LOADED_MACHINE_TIMEOUT_S)
def test_q4_k_m_from_the_command_line_is_smaller_and_generates(run_dir: Path, gguf_f16: Path):
    from llama_cpp import Llama
    from typer.testing import CliRunner

    from agentdistill.cli import app
    from agentdistill.config import load_run_config
    from agentdistill.llm.llamacpp import default_threads
    from agentdistill.tools import load_tools

    f16_modelfile = write_modelfile(run_dir, gguf_f16, "chatml").read_text()
    result = CliRunner().invoke(app, ["export", "--run", str(run_dir), "--to", "ollama", "--quant", "q4_k_m"])
    assert result.exit_code == 0, result.output
    q4 = run_dir / "export" / "gguf" / f"{STUDENT}-q4_k_m.gguf"
    print(f"sizes: f16 {gguf_f16.stat().st_size / 2**20:.1f} MiB, q4_k_m {q4.stat().st_size / 2**20:.1f} MiB")
    assert q4.stat().st_size < 0.6 * gguf_f16.stat().st_size
    assert not [p for p in q4.parent.iterdir() if p.name.startswith(".tmp")]  # no temp file or folder is left
    modelfile = q4.with_suffix(MODELFILE_SUFFIX).read_text()
    assert modelfile.startswith(f"FROM ./{q4.name}\n")
    # the f16 file's own Modelfile, written before into the same folder, is left as it was
    assert gguf_f16.with_suffix(MODELFILE_SUFFIX).read_text() == f16_modelfile
    tools = load_tools(load_run_config(run_dir), run_dir).names()
    assert tools and all(f"- {name}(" in modelfile for name in tools)  # the run's tools are in its system prompt
    llm = Llama(str(q4), n_ctx=512, n_threads=default_threads(), seed=0, verbose=False)
    try:
        prompt = _plain_jinja(llama_cpp_template("chatml"), [{"role": "user", "content": "Hello!"}])
        out = llm(prompt, max_tokens=16, temperature=0.0, stop=["<|im_end|>"])
    finally:
        llm.close()
    assert out["choices"][0]["text"].strip()
    assert os.path.getsize(q4) > 10 * 2**20


def test_export_of_a_run_without_an_adapter_exits_2_naming_sft(tmp_path: Path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "from agentdistill.cli import main; main()", "export", "--run",
                           str(tmp_path), "--to", "hf"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no adapter to export" in proc.stderr and "agentdistill sft" in proc.stderr


# ---- slow: the adapter kept apart, a LoRA GGUF on the registry's own base GGUF --------------------------------


@pytest.fixture(scope="module")
def lora_gguf(run_dir: Path) -> Path:
    from typer.testing import CliRunner

    from agentdistill.cli import app

    out = run_dir / "export" / "lora"
    result = CliRunner().invoke(app, ["export", "--run", str(run_dir), "--to", "ollama", "--lora", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / f"{STUDENT}-lora-f16.gguf"


@pytest.mark.slow
@pytest.mark.timeout(LOADED_MACHINE_TIMEOUT_S)
def test_lora_export_is_a_small_adapter_on_the_registrys_base_file_unchanged(lora_gguf: Path):
    import numpy as np
    from gguf import GGUFReader

    from agentdistill.llm.llamacpp import model_and_lora
    from agentdistill.models.registry import gguf_path

    base, lora = model_and_lora(lora_gguf)
    source = gguf_path(STUDENT)
    assert lora == lora_gguf and base == lora_gguf.parent / source.name
    assert GGUFReader(lora_gguf).fields["general.type"].contents() == "adapter"
    print(f"sizes: LoRA {lora_gguf.stat().st_size / 2**20:.1f} MiB, base {base.stat().st_size / 2**20:.1f} MiB")
    assert lora_gguf.stat().st_size < 0.1 * base.stat().st_size
    written, bundled = GGUFReader(base), GGUFReader(source)
    assert written.fields["tokenizer.chat_template"].contents() == llama_cpp_template("chatml")
    assert written.fields["tokenizer.ggml.add_bos_token"].contents() is False
    assert [t.name for t in written.tensors] == [t.name for t in bundled.tensors]
    assert all(a.tensor_type == b.tensor_type and np.array_equal(a.data, b.data)
               for a, b in zip(written.tensors, bundled.tensors, strict=True))
    assert json.loads(lora_gguf.with_suffix(".json").read_text())["quant"] == "lora-f16"
    modelfile = lora_gguf.with_suffix(MODELFILE_SUFFIX).read_text()
    assert modelfile.startswith(f"FROM ./{base.name}\nADAPTER ./{lora_gguf.name}\n")
    assert not [p for p in lora_gguf.parent.iterdir() if p.name.startswith(".tmp")]


def _last_logits_gap(merged: Path, gguf: Path, lora: Path | None = None) -> float:
    """Mean |logit difference| between llama.cpp's and the merged model's next-token logits after the first
    ``LOGIT_PROMPTS`` prompts."""
    import numpy as np
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentdistill.llm.llamacpp import default_threads

    tok = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    llm = Llama(str(gguf), n_ctx=2048, n_threads=default_threads(), lora_path=str(lora) if lora else None,
                logits_all=True, seed=0, verbose=False)
    gaps = []
    try:
        for ids in _prompts(tok)[:LOGIT_PROMPTS]:
            llm.reset()
            llm.eval(ids)
            with torch.inference_mode():
                want = model(torch.tensor([ids])).logits[0, -1].numpy()
            gaps.append(float(np.abs(llm.scores[len(ids) - 1] - want).mean()))
    finally:
        llm.close()
    return float(np.mean(gaps))


@pytest.mark.slow
@pytest.mark.timeout(LOADED_MACHINE_TIMEOUT_S)
def test_lora_gguf_follows_the_merged_model_and_not_the_base_alone(merged: Path, lora_gguf: Path):
    """The base file's 4-bit weights are the merged model's base weights, so base + LoRA in llama.cpp computes
    what the merged float32 model computes, up to llama.cpp's rounding (it quantizes activations to 8 bits
    for 4-bit weights); the base alone does not."""
    from agentdistill.llm.llamacpp import model_and_lora

    base, lora = model_and_lora(lora_gguf)
    gap_with, gap_without = _last_logits_gap(merged, base, lora), _last_logits_gap(merged, base)
    agreement, whole = _greedy_agreement(merged, base, lora)
    print(f"base Q4_1 + LoRA f16 (llama.cpp) vs merged float32 model (transformers): mean |next-token logit "
          f"difference| over {LOGIT_PROMPTS} prompts {gap_with:.3f} (the base alone {gap_without:.3f}); greedy "
          f"per-token agreement over 20 prompts {agreement:.4f}, {whole}/20 replies identical")
    assert gap_with < 0.5 * gap_without
    assert agreement >= 0.95


@pytest.mark.slow
@pytest.mark.timeout(LOADED_MACHINE_TIMEOUT_S)
def test_lora_export_converts_a_base_that_has_no_gguf_at_the_quant_asked(merged: Path, tmp_path: Path):
    from gguf import GGUFReader, LlamaFileType

    from agentdistill.config import RunConfig
    from agentdistill.export.lora import export_lora_gguf
    from agentdistill.llm import make_llm
    from agentdistill.llm.base import GenerationRequest

    _make_adapter(tmp_path, base_name=str(merged))  # a plain HF folder as the base: no GGUF of its own
    lora = export_lora_gguf(tmp_path, quant="q8_0")
    base = lora.parent / json.loads(lora.with_suffix(".json").read_text())["base_gguf"]
    assert base.name == f"{merged.name}-q8_0.gguf"
    fields = GGUFReader(base).fields
    assert fields["general.file_type"].contents() == LlamaFileType.MOSTLY_Q8_0
    assert fields["tokenizer.chat_template"].contents() == llama_cpp_template("chatml")
    llm = make_llm(str(lora), None, RunConfig())
    (reply,) = llm.generate([GenerationRequest(messages=[{"role": "user", "content": "Hello!"}], max_tokens=8)])[0]
    assert llm.lora_path == lora and reply.text.strip()
