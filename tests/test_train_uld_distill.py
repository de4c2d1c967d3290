"""The distill stage end to end: the offline teacher cache (train/teacher_cache.py) with the real bundled
Gemma 3 270M teacher, then train/distill.py with the real SmolLM2 student and TRL/PEFT, a few steps on
three short traces. One module so that the teacher runs over the traces once for all tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from example_packs import example_config

from agentdistill.config import RunConfig, save_resolved
from agentdistill.errors import UserError
from agentdistill.jsonl import write_records
from agentdistill.records import Outcome, Trace
from agentdistill.train import teacher_cache
from agentdistill.train.teacher_cache import TeacherCache, build_teacher_cache

pytestmark = pytest.mark.slow


def _trace(i: int, name: str, salary: int, years: float) -> Trace:
    gratuity = round(salary / 30 * 21 * min(years, 5) + salary / 30 * 30 * max(0.0, years - 5), 2)
    messages = [
        {"role": "system", "content": "You answer UAE labour-law questions. Tools: calculate_gratuity."},
        {"role": "user", "content": f"{name} earned AED {salary:,}/month for {years} years. Gratuity?"},
        {
            "role": "assistant",
            "thought": f"Compute the gratuity for {years} years at AED {salary:,}.",
            "tool_calls": [
                {"name": "calculate_gratuity", "arguments": {"monthly_basic_salary": salary, "years_of_service": years}}
            ],
        },
        {"role": "tool", "name": "calculate_gratuity", "content": json.dumps({"gratuity_aed": gratuity})},
        {
            "role": "assistant",
            "thought": "The tool answered.",
            "content": f"About AED {gratuity:,} for {name} (Federal Decree-Law 33/2021, Art. 51).",
        },
    ]
    return Trace(
        id=f"t{i}", question_id=f"q{i}", tools=[], messages=messages, teacher="test",
        outcome=Outcome(answer=messages[-1]["content"], steps=2, status="answered"), split="train",
    )  # fmt: skip


TRACES = [
    _trace(0, "Ahmed Al-Mansouri (أحمد المنصوري)", 12_500, 7.5),
    _trace(1, "Fatima Khan", 8_000, 3.0),
    _trace(2, "Li Wei", 21_300, 11.25),
]


def make_run(root: Path, **distill) -> tuple[Path, RunConfig]:
    cfg = example_config()
    cfg.models.teacher = "gemma3-270m"
    cfg.distill.teacher = "gemma3-270m"  # distil from the base teacher as it is: no SFT needed for the test
    cfg.distill.top_k = 16
    for key, value in distill.items():
        setattr(cfg.distill, key, value)
    root.mkdir(parents=True, exist_ok=True)
    write_records(root / "traces.jsonl", TRACES)
    save_resolved(cfg, root)
    return root, cfg


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory):
    """Build with one shard per trace; the third trace fails (injected), then a rerun completes."""
    run, cfg = make_run(tmp_path_factory.mktemp("cache") / "run")
    cfg.sft.max_length, cfg.sft.batch_size, cfg.sft.report_to, cfg.sft.save_steps = 128, 2, [], 1000
    calls: list[int] = []
    real_rows = teacher_cache.teacher_rows

    def failing_rows(model, input_ids, positions, *args):
        calls.append(len(positions))
        if len(calls) == 3:
            raise RuntimeError("injected failure on the third trace")
        return real_rows(model, input_ids, positions, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(teacher_cache, "SHARD_ROWS", 1)
        mp.setattr(teacher_cache, "teacher_rows", failing_rows)
        with pytest.raises(RuntimeError, match="injected"):
            build_teacher_cache(run, cfg)
    shards = sorted((run / "teacher_topk").glob("shard-*.safetensors"))
    before = {p.name: p.read_bytes() for p in shards}
    manifest_after_failure = (run / "teacher_topk" / "manifest.json").exists()

    resumed_calls: list[int] = []

    def counting_rows(model, input_ids, positions, *args):
        resumed_calls.append(len(positions))
        return real_rows(model, input_ids, positions, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(teacher_cache, "SHARD_ROWS", 1)
        mp.setattr(teacher_cache, "teacher_rows", counting_rows)
        report = build_teacher_cache(run, cfg)
    return {"run": run, "cfg": cfg, "before": before, "manifest_after_failure": manifest_after_failure,
            "resumed_calls": resumed_calls, "report": report}  # fmt: skip


def test_an_interrupted_cache_keeps_finished_shards_and_resumes(interrupted_then_resumed):
    r = interrupted_then_resumed
    assert sorted(r["before"]) == ["shard-00000.safetensors", "shard-00001.safetensors"]
    assert not r["manifest_after_failure"]  # the stage is not reported complete
    assert len(r["resumed_calls"]) == 1  # only the trace that failed is computed again
    for name, data in r["before"].items():
        assert (r["run"] / "teacher_topk" / name).read_bytes() == data  # finished shards untouched
    manifest = json.loads((r["run"] / "teacher_topk" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["n_traces"] == 3 and len(manifest["shards"]) == 3
    assert manifest["teacher"] == "gemma3-270m" and manifest["k"] == "16"
    assert 0 < r["report"].mean_topk_mass < 1


def test_a_resumed_cache_removes_the_shards_a_kill_left_half_written_and_keeps_the_finished(tmp_path):
    from safetensors.torch import save_file

    save_file({"probs": torch.zeros(2, 4)}, str(tmp_path / "shard-00000.safetensors"))
    (tmp_path / ".tmp-shard-00001.safetensors").write_bytes(b"half")  # ours, before its rename
    (tmp_path / ".tmpYzKWdG").write_bytes(b"half")  # safetensors' own temporary file, before its rename
    teacher_cache.remove_unfinished_shards(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.safetensors"]


@pytest.fixture(scope="module")
def gemma():
    from agentdistill.models.registry import load_model

    return load_model("gemma3-270m", device="cpu")


def test_cached_rows_equal_the_teachers_full_softmax(interrupted_then_resumed, gemma):
    from agentdistill.train.align import tokenize_trace

    run = interrupted_then_resumed["run"]
    cache = TeacherCache.open(run)
    assert cache.probs.dtype == torch.float16 and cache.probs.shape[1] == 16 and cache.ids is None
    model, tokenizer = gemma
    for trace in TRACES:
        first, n, _ = cache.index[trace.id]
        assert n == len(tokenize_trace(tokenizer, trace.messages).assistant_positions()) > 10
    trace = TRACES[2]  # the one computed after the resume
    tok = tokenize_trace(tokenizer, trace.messages)
    positions = tok.assistant_positions()
    first, n, _ = cache.index[trace.id]
    with torch.no_grad():  # the plain way: every position's logits, a full softmax
        logits = model(input_ids=torch.tensor([tok.input_ids])).logits[0].float()
    want = torch.softmax(logits[[p - 1 for p in positions]], -1).topk(16, dim=-1).values
    got = cache.probs[first : first + n].float()
    torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-3)  # fp16 storage
    torch.testing.assert_close(cache.tail[first : first + n].float(), 1 - want.sum(-1), atol=2e-3, rtol=0)


def test_a_cache_built_for_another_k_is_refused_not_mixed(interrupted_then_resumed):
    run, cfg = interrupted_then_resumed["run"], interrupted_then_resumed["cfg"]
    other = cfg.model_copy(deep=True)
    other.distill.top_k = 32
    with pytest.raises(UserError, match="k: '16' in the cache, '32' now") as err:
        build_teacher_cache(run, other)
    assert "--force" in err.value.hint


def test_distill_refuses_a_cache_that_no_longer_matches_its_traces(interrupted_then_resumed):
    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.distill import build_examples

    cache = TeacherCache.open(interrupted_then_resumed["run"])
    student, teacher = load_tokenizer("smollm2-135m"), load_tokenizer("gemma3-270m")
    examples, data = build_examples(TRACES, student, teacher, 512, cache)
    assert data.n_examples == 3 and data.match_rate > 0.8
    rows = [r for e in examples for r in e["teacher_index"] if r >= 0]
    assert len(set(rows)) == len(rows) and max(rows) < cache.probs.shape[0]  # each teacher row used once
    edited = TRACES[0].model_copy(deep=True)
    edited.messages[-1]["content"] = edited.messages[-1]["content"].replace("About", "Roughly")
    with pytest.raises(UserError, match="does not match trace 't0'"):
        build_examples([edited], student, teacher, 512, cache)


def test_teacher_cache_command_on_a_complete_cache_computes_nothing(interrupted_then_resumed):
    from typer.testing import CliRunner

    from agentdistill.cli import app

    run = interrupted_then_resumed["run"]
    stamp = {p.name: p.stat().st_mtime_ns for p in (run / "teacher_topk").glob("shard-*")}
    result = CliRunner().invoke(app, ["teacher-cache", "--run", str(run)])
    assert result.exit_code == 0, result.output
    assert {p.name: p.stat().st_mtime_ns for p in (run / "teacher_topk").glob("shard-*")} == stamp


def test_no_fine_tuned_teacher_is_a_clear_error(tmp_path):
    run, cfg = make_run(tmp_path / "run")
    cfg.distill.teacher = None  # default: the adapter of `agentdistill sft --model teacher`, absent here
    with pytest.raises(UserError, match="no fine-tuned teacher") as err:
        build_teacher_cache(run, cfg)
    assert "sft" in err.value.hint and "--model teacher" in err.value.hint


def test_offline_distill_writes_a_trained_lora_adapter(interrupted_then_resumed):
    from safetensors.torch import load_file

    from agentdistill.train.distill import train_distill

    run, cfg = interrupted_then_resumed["run"], interrupted_then_resumed["cfg"]
    result = train_distill(run, cfg, max_steps=2)
    out = run / "adapters" / "smollm2-135m-uld"
    assert result.adapter_dir == out and result.steps == 2
    meta = json.loads((out / "agentdistill.json").read_text())
    assert meta["kind"] == "uld" and meta["teacher"] == "gemma3-270m" and meta["distill"]["top_k"] == 16
    assert meta["data"]["match_rate"] > 0.8
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == "smollm2-135m"
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b)  # LoRA B starts at zero: training moved it
    assert torch.isfinite(torch.tensor(result.train_loss))
    assert not (run / "checkpoints" / "distill-smollm2-135m").exists()  # removed once the adapter is complete
    again = train_distill(run, cfg, max_steps=2)
    assert again.skipped  # resumable stage: a finished adapter is not retrained


def test_online_teacher_gives_the_cached_rows_and_trains(interrupted_then_resumed, gemma):
    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.distill import DistillCollator, build_examples, online_teacher_rows, train_distill

    run, cfg = interrupted_then_resumed["run"], interrupted_then_resumed["cfg"]
    student_tok = load_tokenizer("smollm2-135m")
    teacher, teacher_tok = gemma
    cache = TeacherCache.open(run)
    offline, _ = build_examples(TRACES[:2], student_tok, teacher_tok, 128, cache)
    online, _ = build_examples(TRACES[:2], student_tok, teacher_tok, 128, None)
    off = DistillCollator(student_tok.pad_token_id, cache)(offline)
    on = DistillCollator(student_tok.pad_token_id, None, teacher_tok.pad_token_id)(online)
    has = off["teacher_index"] >= 0
    assert torch.equal(has, on["teacher_index"] >= 0) and has.sum() > 20
    probs, tail, _ = online_teacher_rows(teacher, on, cfg.distill)
    torch.testing.assert_close(probs[has], off["teacher_probs"][has].float(), atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(tail[has], off["teacher_tail"][has].float(), atol=2e-3, rtol=0)

    online_cfg = cfg.model_copy(deep=True)
    online_cfg.distill.mode = "online"
    online_cfg.sft.max_length = 96  # the first assistant step: enough to run the teacher in the loop
    result = train_distill(run, online_cfg, max_steps=1, force=True)
    assert result.steps == 1 and torch.isfinite(torch.tensor(result.train_loss))
    assert json.loads((result.adapter_dir / "agentdistill.json").read_text())["distill"]["mode"] == "online"
