"""The model registry: names, local folders, loading with adapters, and GGUF conversion fidelity."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from agentdistill.errors import UserError
from agentdistill.models.cache import MARKER, read_marker
from agentdistill.models.registry import BUNDLED, load_model, load_tokenizer, prepare, resolve
from agentdistill.models.templates import END_OF_TURN, family_of, template_text

LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentdistill.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_bundled_names_resolve_to_their_families():
    assert resolve("smollm2-135m").family == "chatml"
    assert resolve("gemma3-270m").family == "gemma3"
    assert {resolve(n).role for n in BUNDLED} == {"student", "teacher"}


def test_unknown_name_is_a_user_error_listing_valid_names():
    with pytest.raises(UserError) as e:
        resolve("smollm3-999m")
    assert "smollm3-999m" in e.value.message and "smollm2-135m" in e.value.hint


def test_uncached_hub_id_offline_says_why(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not available") as e:
        resolve("nobody-here/not-a-model-xyz")
    assert "HF_HUB_OFFLINE" in e.value.hint


def test_embedder_is_not_a_chat_model():
    with pytest.raises(UserError, match="embedder"):
        resolve("all-minilm-l6-v2")


def test_cli_prepare_unknown_name_exits_2_with_valid_names():
    r = _cli("models", "prepare", "no-such-model")
    assert r.returncode == 2
    assert "no-such-model" in r.stderr and "smollm2-135m, gemma3-270m" in r.stderr


def test_cli_list_shows_prepared_models(bundled_models):
    r = _cli("models", "list")
    assert r.returncode == 0, r.stderr
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.count("│") > 3}
    for name in BUNDLED:
        assert " yes " in rows[name]
    assert "chatml" in rows["smollm2-135m"] and "262,144" in rows["gemma3-270m"]
    assert "embedder" in rows["all-minilm-l6-v2"]


@pytest.fixture(scope="module")
def tiny_llama3_folder(tmp_path_factory, bundled_models):
    """A small random Llama model in a plain HF folder, with a Llama-3-style tokenizer (SmolLM2's
    vocabulary plus Llama 3's control tokens): stands for a user's local model."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("my-llama")
    tok = load_tokenizer("smollm2-135m")
    tok.add_tokens(LLAMA3_TOKENS, special_tokens=True)
    tok.chat_template = None
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def test_local_folder_family_is_detected_and_prepared_by_linking(tiny_llama3_folder, tmp_path):
    spec = resolve(str(tiny_llama3_folder))
    assert (spec.source, spec.family) == ("local", "llama3")
    # a leftover folder without marker at the cache slot is not used
    junk = tmp_path / "models" / spec.slug
    junk.mkdir(parents=True)
    (junk / "model.safetensors").write_bytes(b"truncated")
    folder = prepare(str(tiny_llama3_folder), cache_dir=tmp_path)
    assert folder == junk and read_marker(folder)["family"] == "llama3"
    assert (folder / "model.safetensors").is_symlink()
    assert (folder / "chat_template.jinja").read_text() == template_text("llama3")
    assert prepare(str(folder)) == folder  # a prepared folder names itself
    model, tok = load_model(str(tiny_llama3_folder), cache_dir=tmp_path)
    assert family_of(tok) == "llama3" and model.dtype == torch.float32
    assert read_marker(folder)["params"] == model.num_parameters()


def test_adapter_loads_onto_its_base_with_the_same_outputs(tiny_llama3_folder, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = prepare(str(tiny_llama3_folder), cache_dir=tmp_path)
    torch.manual_seed(1)
    trained = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                             LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapters" / "tiny"
    trained.save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)

    ids = torch.tensor([[5, 17, 300, 2]])
    want = trained.eval()(ids).logits
    plain, _ = load_model(str(base))
    for model, _tok in (load_model(str(base), adapter=adapter), load_model(None, adapter=adapter),
                        load_model(str(adapter))):
        with torch.no_grad():
            assert torch.allclose(model(ids).logits, want, atol=1e-6)
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, want, atol=1e-3)  # the adapter does change the output


def test_adapter_dir_without_config_is_refused(tmp_path):
    with pytest.raises(UserError, match="adapter_config.json"):
        load_model("smollm2-135m", adapter=tmp_path)


def test_generation_stops_at_the_family_end_of_turn(bundled_models):
    for name, folder in bundled_models.items():
        added = json.loads((folder / "tokenizer.json").read_text())["added_tokens"]  # no slow tokenizer load
        eot_id = next(t["id"] for t in added if t["content"] == END_OF_TURN[resolve(name).family])
        eos = json.loads((folder / "generation_config.json").read_text())["eos_token_id"]
        assert eot_id in (eos if isinstance(eos, list) else [eos])


@pytest.mark.slow
def test_converted_smollm2_logits_equal_the_gguf_models(bundled_models):
    """Independent of the check done at conversion: load the GGUF again through transformers."""
    from transformers import AutoModelForCausalLM

    from agentdistill.models.registry import gguf_path

    gguf = gguf_path("smollm2-135m")
    model, tok = load_model("smollm2-135m", device="cpu")
    assert model.dtype == torch.float32 and (bundled_models["smollm2-135m"] / MARKER).exists()
    ids = tok("Thought: I should look up Art. 51.\nAction:", return_tensors="pt").input_ids
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)


def test_an_adapter_is_merged_in_float32_before_a_bf16_cast(tiny_llama3_folder, tmp_path):
    # A LoRA update smaller than bf16's spacing at the base weight: added to bf16 weights it would round away
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = prepare(str(tiny_llama3_folder), cache_dir=tmp_path)
    torch.manual_seed(2)
    trained = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                             LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapters" / "tiny"
    trained.save_pretrained(adapter)
    merged_fp32 = trained.merge_and_unload().model.layers[0].self_attn.q_proj.weight.detach()

    model, _ = load_model(str(base), adapter=adapter, dtype=torch.bfloat16)
    got = model.model.layers[0].self_attn.q_proj.weight
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, merged_fp32.to(torch.bfloat16))


def test_local_models_generate_in_bf16_where_the_config_or_the_cpu_says_so():
    from pathlib import Path

    from agentdistill.config import RunConfig
    from agentdistill.llm import generation_dtype

    cfg = RunConfig()
    native = bool({"avx512_bf16", "amx_bf16"} & set(Path("/proc/cpuinfo").read_text().split()))
    assert generation_dtype(cfg, "cpu") == (torch.bfloat16 if native else torch.float32)
    cfg.models.generation_bf16 = False
    assert generation_dtype(cfg, "cpu") == torch.float32
    cfg.models.generation_bf16 = True
    assert generation_dtype(cfg, "cpu") == torch.bfloat16


def test_a_saved_tokenizer_that_encodes_unlike_the_ggufs_is_refused(bundled_models, tmp_path):
    """The fault of transformers 5.17 on Gemma 3's GGUF: the saved tokenizer makes every character a token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from agentdistill.models.convert import CHECK_TEXT, check_saved_tokenizer

    chars = sorted(set(CHECK_TEXT))
    per_char = Tokenizer(models.WordLevel({c: i for i, c in enumerate(["<unk>", *chars])}, unk_token="<unk>"))
    per_char.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    broken = PreTrainedTokenizerFast(tokenizer_object=per_char, unk_token="<unk>")
    read = load_tokenizer("smollm2-135m")
    check_saved_tokenizer(read, read, tmp_path / "model.gguf")
    with pytest.raises(UserError, match=r"saved the tokenizer of .*model.gguf wrongly: .* as 90 tokens"):
        check_saved_tokenizer(broken, read, tmp_path / "model.gguf")


def test_a_saved_tokenizer_whose_end_token_is_not_the_ggufs_is_refused(bundled_models):
    """The fault of transformers 5.17 on SmolLM2's GGUF: eos saved as <|im_start|>, which later aborts llama.cpp."""
    from agentdistill.models.convert import check_saved_end_token
    from agentdistill.models.registry import gguf_path

    gguf = gguf_path("smollm2-135m")
    tok = load_tokenizer("smollm2-135m")
    check_saved_end_token(tok, gguf)
    tok.eos_token = "<|im_start|>"
    with pytest.raises(UserError, match=r"end-of-sequence token '<\|im_start\|>' \(id 1\) where the GGUF names id 2"):
        check_saved_end_token(tok, gguf)


def test_an_adapters_tokenizer_with_another_end_token_than_its_base_gives_way_to_the_bases(bundled_models, tmp_path,
                                                                                            capsys):
    from agentdistill.models.registry import _adapter_tokenizer, prepare

    base = prepare("smollm2-135m")
    assert _adapter_tokenizer(tmp_path, base, "chatml").eos_token == "<|im_end|>"  # no tokenizer saved: the base's
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((base / name).read_bytes())
    assert _adapter_tokenizer(tmp_path, base, "chatml").eos_token == "<|im_end|>"
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "eos_token": "<|im_start|>"}))
    assert _adapter_tokenizer(tmp_path, base, "chatml").eos_token == "<|im_end|>"
    warned = " ".join(capsys.readouterr().err.split())
    assert "'<|im_start|>'" in warned and "using the base model's" in warned
