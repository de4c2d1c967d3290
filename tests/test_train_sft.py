"""SFT on a handful of hand-written canonical traces: real SmolLM2, real TRL + PEFT, a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from example_packs import example_config

from agentdistill.agent.wire import render_assistant
from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.jsonl import write_records
from agentdistill.records import Outcome, Trace

SYSTEM = (
    "You are a helpful assistant with tools.\n"
    "Tools:\n- calculator(expression: string): evaluate arithmetic.\n"
    "- annual_leave(months_of_service: number): paid leave days under UAE labour law.\n"
    'Reply with "Thought: ..." then "Action: {"name": ..., "arguments": {...}}" or "Answer: ...".'
)
TOOLS = [
    {"name": "calculator", "description": "Evaluate arithmetic.",
     "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}},
    {"name": "annual_leave", "description": "Paid leave days.",
     "parameters": {"type": "object", "properties": {"months_of_service": {"type": "number"}},
                    "required": ["months_of_service"]}},
]


def _trace(i: int, question: str, call: dict | None, observation: str, answer: str, split: str = "train") -> Trace:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    if call is not None:
        messages += [
            {"role": "assistant", "thought": f"I should use {call['name']}.", "tool_calls": [call]},
            {"role": "tool", "name": call["name"], "content": observation},
        ]
    messages.append({"role": "assistant", "thought": "I have what I need.", "content": answer})
    steps = sum(m["role"] == "assistant" for m in messages)
    return Trace(id=f"t{i}", question_id=f"q{i}", tools=TOOLS, messages=messages, teacher="hand",
                 outcome=Outcome(answer=answer, steps=steps, status="answered"), split=split)


def make_run(run: Path, n: int = 6) -> list[Trace]:
    base = [
        ("What is 12 * 7?", {"name": "calculator", "arguments": {"expression": "12 * 7"}}, "84", "12 * 7 = 84."),
        ("How many leave days after 18 months?", {"name": "annual_leave", "arguments": {"months_of_service": 18}},
         "30 days per year (Federal Decree-Law 33/2021, Art. 29).",
         "30 days a year (Federal Decree-Law 33/2021, Art. 29)."),
        ("Hello, who are you?", None, "", "I answer questions about UAE labour law."),
        ("What is 250 / 4?", {"name": "calculator", "arguments": {"expression": "250 / 4"}}, "62.5", "It is 62.5."),
    ]
    traces = [_trace(i, *base[i % len(base)]) for i in range(n)]
    traces.append(_trace(99, "held out", None, "", "not trained", split="test"))
    write_records(run / "traces.jsonl", traces)
    return traces


def tiny_cfg() -> RunConfig:
    cfg = example_config()
    cfg.sft.batch_size = 2
    cfg.sft.max_length = 256
    cfg.sft.lora_r = 8
    cfg.sft.lora_alpha = 16
    cfg.sft.learning_rate = 1e-3
    cfg.sft.logging_steps = 1
    cfg.sft.save_steps = 1
    return cfg


def test_assistant_mask_selects_exactly_the_assistant_turns():
    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.data import tokenize_traces

    tok = load_tokenizer("smollm2-135m")
    trace = _trace(0, "What is 12 * 7?", {"name": "calculator", "arguments": {"expression": "12 * 7"}}, "84", "84.")
    examples, stats = tokenize_traces([trace], tok, max_length=1024)
    ids, mask = examples[0]["input_ids"], examples[0]["assistant_masks"]
    trained = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    steps = [m for m in trace.messages if m["role"] == "assistant"]
    assert trained == "".join(render_assistant(m) + "<|im_end|>" for m in steps)
    assert SYSTEM not in trained and "84\n" not in trained  # neither prompt nor observation is learned
    assert 0 < stats.trained_fraction < 0.5 and stats.n_truncated == 0


def test_too_short_max_length_is_refused_with_the_example_id(tmp_path):
    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.data import tokenize_traces

    traces = make_run(tmp_path, n=2)
    with pytest.raises(UserError, match="t0") as e:
        tokenize_traces(traces[:1], load_tokenizer("smollm2-135m"), max_length=20)  # the system prompt fills it
    assert "max_length" in e.value.hint


def test_missing_or_empty_traces_give_a_clear_error(tmp_path):
    from agentdistill.train.sft import train_sft

    with pytest.raises(UserError, match="traces.jsonl does not exist"):
        train_sft(tmp_path, tiny_cfg())
    write_records(tmp_path / "traces.jsonl", [_trace(1, "q", None, "", "a", split="test")])
    with pytest.raises(UserError, match="no answered traces in the train split"):
        train_sft(tmp_path, tiny_cfg())


def test_sft_command_names_the_missing_input(tmp_path):
    from typer.testing import CliRunner

    from agentdistill.cli import app

    r = CliRunner().invoke(app, ["sft", "--run", str(tmp_path), "--model", "student"])
    assert isinstance(r.exception, UserError) and "agentdistill traces" in r.exception.hint


def test_cpu_bf16_follows_the_config_and_the_cpu_flags():
    from pathlib import Path

    from agentdistill.train.sft import use_bf16

    cfg = tiny_cfg()
    cfg.sft.bf16 = False
    assert use_bf16(cfg, cuda=False) is False
    cfg.sft.bf16 = None
    native = {"avx512_bf16", "amx_bf16"} & set(Path("/proc/cpuinfo").read_text().split())
    assert use_bf16(cfg, cuda=False) == bool(native)


def test_a_frozen_base_sits_in_bf16_where_bf16_is_used_and_updated_weights_stay_float32():
    import torch
    from peft import get_peft_model

    from agentdistill.train.sft import load_base_model, lora_config

    cfg = tiny_cfg()
    cfg.sft.bf16 = True
    base = load_base_model("smollm2-135m", cfg, False)
    model = get_peft_model(base, lora_config(cfg, base))
    dtypes = {p.requires_grad: set() for p in model.parameters()}
    for p in model.parameters():
        dtypes[p.requires_grad].add(p.dtype)
    assert dtypes == {False: {torch.bfloat16}, True: {torch.float32}}
    cfg.sft.bf16 = False
    assert load_base_model("smollm2-135m", cfg, False).dtype == torch.float32
    cfg.sft.bf16, cfg.sft.method = True, "full"
    assert load_base_model("smollm2-135m", cfg, False).dtype == torch.float32


@pytest.mark.slow
def test_tiny_lora_run_writes_an_adapter_that_loads_and_changes_the_model(tmp_path):
    import torch

    from agentdistill.models.registry import load_model
    from agentdistill.train.sft import train_sft

    make_run(tmp_path)
    result = train_sft(tmp_path, tiny_cfg(), "student", max_steps=2)
    out = tmp_path / "adapters" / "smollm2-135m"
    assert result.adapter_dir == out and result.steps == 2 and result.steps_run == 2
    assert result.train_loss is not None and result.train_loss > 0
    for f in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "chat_template.jinja"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "agentdistill.json").read_text())
    assert meta["base_model"] == "smollm2-135m" and meta["method"] == "lora" and meta["steps"] == 2
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m"
    assert not (tmp_path / "checkpoints" / "sft-smollm2-135m").exists()  # removed once the adapter is whole
    assert any((tmp_path / "logs" / "sft-smollm2-135m").iterdir())  # TensorBoard events

    tuned, tok = load_model(str(out), device="cpu")
    base, _ = load_model("smollm2-135m", device="cpu")
    ids = tok("Thought: I should use calculator.", return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (tuned(ids).logits - base(ids).logits).abs().max().item()
    assert diff > 1e-4  # the trained LoRA weights are in the loaded model

    again = train_sft(tmp_path, tiny_cfg(), "student", max_steps=2)  # a finished stage is not redone
    assert again.skipped and again.steps == 2


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_training_resumes_from_the_last_checkpoint_after_a_kill(tmp_path, monkeypatch):
    from transformers import Trainer

    from agentdistill.train.sft import train_sft

    make_run(tmp_path)
    real_save = Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):  # fault injection: the process dies right after checkpoint 2
        real_save(self, *args, **kwargs)
        if self.state.global_step == 2:
            raise _Killed()

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        train_sft(tmp_path, tiny_cfg(), "student", max_steps=3)
    assert not (tmp_path / "adapters" / "smollm2-135m").exists()  # no half-written adapter
    assert (tmp_path / "checkpoints" / "sft-smollm2-135m" / "checkpoint-2").is_dir()

    monkeypatch.setattr(Trainer, "_save_checkpoint", real_save)
    result = train_sft(tmp_path, tiny_cfg(), "student", max_steps=3)
    assert result.steps == 3 and result.steps_run == 1  # continued at step 2, did not start over
    assert (tmp_path / "adapters" / "smollm2-135m" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_time_budget_trains_the_steps_that_fit_instead_of_the_planned_ones(tmp_path):
    from agentdistill.train.sft import train_sft

    make_run(tmp_path)
    cfg = tiny_cfg()
    cfg.sft.time_budget_min = 0.02  # 1.2 s: less than the first 10 steps with a checkpoint after each
    result = train_sft(tmp_path, cfg, "student", max_steps=40)
    assert 10 < result.steps < 40 and result.steps_run == result.steps
    meta = json.loads((tmp_path / "adapters" / "smollm2-135m" / "agentdistill.json").read_text())
    assert meta["steps"] == result.steps and meta["planned_steps"] == 40

    from agentdistill.evaluate.report import _adapters_table

    assert f"{result.steps} of 40 (time budget)" in _adapters_table(tmp_path)


def test_shared_prefix_stops_before_the_first_trained_token():
    from agentdistill.train.shared_prefix import shared_prefix

    head = list(range(100, 150))
    examples = [
        {"input_ids": head + [1, 2, 3], "assistant_masks": [0] * 50 + [0, 1, 1]},
        {"input_ids": head + [1, 9], "assistant_masks": [0] * 50 + [0, 1]},
    ]
    assert shared_prefix(examples) == head  # 51 shared tokens, but token 51 is trained: stop before its predictor
    early = [{"input_ids": head + [1], "assistant_masks": [0] * 40 + [1] * 11}, examples[0]]
    assert shared_prefix(early) == head[:39]
    assert shared_prefix([examples[0], {"input_ids": [7] + head, "assistant_masks": [0] * 51}]) == []


def test_the_own_loss_and_gradients_equal_trls_with_and_without_a_shared_prefix(tmp_path):
    import torch
    from trl import SFTTrainer

    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.data import load_train_traces, to_dataset, tokenize_traces
    from agentdistill.train.sft import load_base_model, lora_config, training_args
    from agentdistill.train.shared_prefix import SharedPrefixSFTTrainer, shared_prefix

    make_run(tmp_path, n=4)
    cfg = tiny_cfg()
    cfg.sft.batch_size = 4
    cfg.sft.lora_dropout = 0.0  # dropout would draw different masks on the two paths
    cfg.sft.bf16 = False
    traces, _ = load_train_traces(tmp_path)
    tok = load_tokenizer("smollm2-135m")
    examples, _ = tokenize_traces(traces, tok, cfg.sft.max_length)
    prefix = shared_prefix(examples)
    assert len(prefix) > 32
    base = load_base_model("smollm2-135m", cfg, False)
    trainer = SharedPrefixSFTTrainer(
        prefix_ids=prefix, model=base,
        args=training_args(cfg, tmp_path / "ckpt", 1, False, False), train_dataset=to_dataset(examples),
        processing_class=tok, peft_config=lora_config(cfg, base))
    model = trainer.model
    with torch.no_grad():  # LoRA B starts at zero; make the adapters act so their gradients cross the prefix
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert trainer.prefix_applies(batch)

    def loss_and_grads(compute_loss) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad()
        loss = compute_loss(model, dict(batch))
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    trls_loss, trls_grads = loss_and_grads(lambda m, b: SFTTrainer.compute_loss(trainer, m, b))
    assert {n for n, g in trls_grads.items() if g.abs().sum() > 0}  # the check compares real gradients
    for prefix_ids in (prefix, []):  # the shared prefix's path, and the whole rows with the trained positions only
        trainer.prefix_ids = prefix_ids
        assert trainer.prefix_applies(batch) == bool(prefix_ids) and trainer.own_loss_applies(batch)
        own_loss, own_grads = loss_and_grads(trainer.compute_loss)
        assert own_loss == pytest.approx(trls_loss, rel=1e-4)
        for name, g in trls_grads.items():
            # float32 sums in another order: agree to 2e-3 of each tensor's largest entry (seen: ~1e-4 on a Xeon,
            # 1.06e-3 on one tensor on an AMD EPYC, whose kernels sum in yet another order); a wrong position or
            # mask moves gradients by the order of the gradients themselves
            assert (own_grads[name] - g).abs().max() <= 2e-3 * g.abs().max() + 1e-8, (name, len(prefix_ids))


def test_neftune_noise_reaches_the_shared_prefix_loss_while_training_only(tmp_path):
    import torch
    from transformers.integrations.neftune import activate_neftune

    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.data import load_train_traces, to_dataset, tokenize_traces
    from agentdistill.train.sft import load_base_model, lora_config, training_args
    from agentdistill.train.shared_prefix import SharedPrefixSFTTrainer, shared_prefix

    make_run(tmp_path, n=4)
    cfg = tiny_cfg()
    cfg.sft.batch_size, cfg.sft.lora_dropout, cfg.sft.bf16 = 4, 0.0, False
    cfg.sft.neftune_noise_alpha = 5.0
    traces, _ = load_train_traces(tmp_path)
    tok = load_tokenizer("smollm2-135m")
    examples, _ = tokenize_traces(traces, tok, cfg.sft.max_length)
    prefix = shared_prefix(examples)
    base = load_base_model("smollm2-135m", cfg, False)
    trainer = SharedPrefixSFTTrainer(
        prefix_ids=prefix, model=base,
        args=training_args(cfg, tmp_path / "ckpt", 1, False, False), train_dataset=to_dataset(examples),
        processing_class=tok, peft_config=lora_config(cfg, base))
    assert trainer.neftune_noise_alpha == 5.0  # the config reaches the trainer, which hooks it in at train()
    activate_neftune(trainer.model, trainer.neftune_noise_alpha, trainer.accelerator)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert trainer.prefix_applies(batch)

    def loss() -> float:
        with torch.no_grad():
            return trainer.compute_loss(trainer.model, dict(batch)).item()

    trainer.model.train()
    assert loss() != loss()  # fresh noise on every pass, the prefix pass included
    trainer.model.eval()
    assert loss() == loss()


def test_lora_layers_adapts_only_the_top_layers_and_rejects_a_bad_count():
    from peft import get_peft_model

    from agentdistill.train.sft import load_base_model, lora_config

    cfg = tiny_cfg()
    base = load_base_model("smollm2-135m", cfg, False)
    n_layers = base.config.num_hidden_layers
    cfg.sft.lora_layers = 3
    model = get_peft_model(base, lora_config(cfg, base))
    adapted = {int(name.split(".layers.")[1].split(".")[0]) for name, _ in model.named_parameters() if "lora_" in name}
    assert adapted == {n_layers - 3, n_layers - 2, n_layers - 1}
    kinds = {name.split(".")[-4] for name, _ in model.named_parameters() if "lora_A" in name}
    assert {"q_proj", "v_proj", "down_proj"} <= kinds  # "all-linear" still means every linear layer
    cfg.sft.lora_layers = n_layers + 1
    with pytest.raises(UserError, match="lora_layers"):
        lora_config(cfg, base)


def test_max_examples_takes_a_seeded_sample_across_the_file(tmp_path):
    from agentdistill.train.data import load_train_traces

    make_run(tmp_path, n=40)
    first, n_train = load_train_traces(tmp_path, 10, seed=0)
    again, _ = load_train_traces(tmp_path, 10, seed=0)
    other, _ = load_train_traces(tmp_path, 10, seed=1)
    ids = [t.id for t in first]
    assert n_train == 40 and len(ids) == 10 and ids == [t.id for t in again]
    assert ids != [t.id for t in other]
    order = [f"t{i}" for i in range(40)]
    assert ids == sorted(ids, key=order.index)  # file order kept
    assert ids != order[:10]  # not just the head of the file


def test_traces_that_call_two_tools_add_copies_of_their_first_turn(tmp_path):
    from agentdistill.train.data import load_train_traces

    traces = make_run(tmp_path, n=8)
    two_tools = traces[1].model_copy(update={"id": "t-two", "messages": traces[1].messages[:-1] + [
        {"role": "assistant", "thought": "Now the arithmetic.",
         "tool_calls": [{"name": "calculator", "arguments": {"expression": "30 * 1.5"}}]},
        {"role": "tool", "name": "calculator", "content": "45"},
        traces[1].messages[-1],
    ]})
    twice_one_tool = traces[0].model_copy(update={"id": "t-twice", "messages": traces[0].messages[:-1] + [
        traces[0].messages[2], traces[0].messages[3], traces[0].messages[-1]]})
    write_records(tmp_path / "traces.jsonl", [*traces, two_tools, twice_one_tool])

    plain, _ = load_train_traces(tmp_path)
    repeated, _ = load_train_traces(tmp_path, multi_tool_first_turns=2)
    assert [t.id for t in repeated] == [t.id for t in plain] + ["t-two#first-turn-1", "t-two#first-turn-2"]
    assert repeated[-1].messages == two_tools.messages[:3]  # the plan's first step only
    # with a sample, the copies come whether or not the sample kept the whole trace
    sampled, _ = load_train_traces(tmp_path, 3, seed=0, first_turns_of_rest=True, multi_tool_first_turns=1)
    assert len(sampled) == 10 + 1 and sampled[-1].id == "t-two#first-turn-1"


def test_the_traces_max_examples_leaves_out_join_as_their_first_turn(tmp_path):
    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.data import load_train_traces, tokenize_traces

    make_run(tmp_path, n=40)
    sample, _ = load_train_traces(tmp_path, 10, seed=0)
    both, _ = load_train_traces(tmp_path, 10, seed=0, first_turns_of_rest=True)
    assert [t.id for t in both[:10]] == [t.id for t in sample]  # the whole traces are the same sample
    rest = both[10:]
    assert len(rest) == 30 and {t.id.removesuffix("#first-turn") for t in rest}.isdisjoint(t.id for t in sample)
    full = {t.id: t for t in load_train_traces(tmp_path)[0]}
    for t in rest:
        assert [m["role"] for m in t.messages] == ["system", "user", "assistant"]
        assert t.messages == full[t.id.removesuffix("#first-turn")].messages[:3]
    # each still trains its one assistant turn, and costs a fraction of the whole trace
    tokenizer = load_tokenizer("smollm2-135m")
    cut, _ = tokenize_traces(rest, tokenizer, 1536)
    whole, _ = tokenize_traces([full[t.id.removesuffix("#first-turn")] for t in rest], tokenizer, 1536)
    assert all(sum(e["assistant_masks"]) > 0 for e in cut)
    assert sum(len(e["input_ids"]) for e in cut) < sum(len(e["input_ids"]) for e in whole)
