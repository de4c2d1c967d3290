"""Run config: defaults, precise errors (field, file, line, close match), path resolution, and the
resolved copy a run directory keeps so later stages need no --config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agentdistill.config import (
    RunConfig,
    apply_overrides,
    load_config,
    load_run_config,
    open_run,
    save_resolved,
)
from agentdistill.errors import UserError
from agentdistill.run_layout import CONFIG_RESOLVED

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "uae_labour" / "config.yaml"


def _write(folder: Path, text: str, name: str = "run.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        load_config(path)
    return str(info.value)


def test_empty_file_gives_the_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, ""))
    assert cfg.model_dump() == RunConfig().model_dump()


def test_values_are_read_into_their_sections(tmp_path):
    cfg = load_config(_write(tmp_path, "name: t\nsft:\n  lora_r: 8\n  epochs: 0.5\nteacher:\n  kind: openai\n"))
    assert (cfg.name, cfg.sft.lora_r, cfg.sft.epochs, cfg.teacher.kind) == ("t", 8, 0.5, "openai")
    assert cfg.sft.lora_alpha == RunConfig().sft.lora_alpha  # untouched keys keep their defaults


def test_unknown_top_level_key_names_file_line_and_close_match(tmp_path):
    path = _write(tmp_path, "name: x\nseed: 1\nmodles:\n  student: a\n")
    msg = _error(path)
    assert f"{path}, line 3" in msg
    assert "unknown key 'modles'" in msg
    assert "Did you mean 'models'?" in msg


def test_unknown_nested_key_names_the_dotted_field_and_its_line(tmp_path):
    path = _write(tmp_path, "sft:\n  method: lora\n  lora_rr: 8\n")
    msg = _error(path)
    assert f"{path}, line 3: unknown key 'sft.lora_rr'. Did you mean 'lora_r'?" in msg


def test_unknown_key_without_a_close_match_lists_the_valid_keys(tmp_path):
    msg = _error(_write(tmp_path, "export:\n  zzzzzz: 1\n"))
    assert "unknown key 'export.zzzzzz'" in msg
    assert "Valid keys here: gguf_quant, ollama." in msg


def test_wrong_type_names_field_line_and_value(tmp_path):
    path = _write(tmp_path, "name: x\nsft:\n  lora_r: sixteen\n")
    msg = _error(path)
    assert f"{path}, line 3: 'sft.lora_r'" in msg
    assert "integer" in msg
    assert "'sixteen'" in msg


def test_bad_choice_and_bad_list_item_point_at_their_lines(tmp_path):
    path = _write(tmp_path, "teacher: {kind: gpt}\ncorpus:\n  paths:\n    - ok.md\n    - [nested]\n")
    msg = _error(path)
    assert f"{path}, line 1: 'teacher.kind'" in msg and "'rule', 'openai' or 'local'" in msg
    assert f"{path}, line 5: 'corpus.paths.1'" in msg


def test_every_problem_is_reported_at_once(tmp_path):
    msg = _error(_write(tmp_path, "modles: {}\nsft:\n  lora_r: x\neval:\n  split: validation\n"))
    assert "'modles'" in msg and "'sft.lora_r'" in msg and "'eval.split'" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed\n", "not valid YAML"),
        ("- models\n- corpus\n", "top level must be a mapping"),
        ("just a string\n", "top level must be a mapping"),
    ],
)
def test_malformed_files_are_user_errors_naming_the_file(tmp_path, text, expected):
    path = _write(tmp_path, text)
    msg = _error(path)
    assert expected in msg
    assert str(path) in msg


def test_missing_file_is_a_user_error_with_a_hint(tmp_path):
    with pytest.raises(UserError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in info.value.message
    assert info.value.hint


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    absolute = tmp_path / "abs" / "doc.md"
    path = _write(
        folder,
        f"corpus:\n  paths: [docs, ../shared/law.md, {absolute}]\nquestions:\n  personas: p.yaml\n"
        "models:\n  cache_dir: .cache\n",
    )
    cfg = load_config(Path("..") / path.relative_to(tmp_path), check_paths=False)  # resolution, not existence
    assert cfg.corpus.paths == [folder / "docs", tmp_path / "project" / "shared" / "law.md", absolute]
    assert cfg.questions.personas == folder / "p.yaml"
    assert cfg.models.cache_dir == folder / ".cache"


def test_home_folder_paths_expand(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "docs").mkdir(parents=True)
    cfg = load_config(_write(tmp_path, "models:\n  cache_dir: ~/models\ncorpus:\n  paths: [~/docs]\n"))
    assert cfg.models.cache_dir == tmp_path / "home" / "models"
    assert cfg.corpus.paths == [tmp_path / "home" / "docs"]


def test_unset_optional_paths_stay_unset(tmp_path):
    cfg = load_config(_write(tmp_path, "name: x\n"))
    assert cfg.questions.personas is None and cfg.models.cache_dir is None and cfg.corpus.paths == []


def test_example_config_is_valid_and_points_into_the_example(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(EXAMPLE)
    assert cfg.corpus.paths == [EXAMPLE.parent / "corpus"]
    assert cfg.questions.personas == EXAMPLE.parent / "personas.yaml"


def test_saved_config_reloads_identically_from_any_folder(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    cfg = load_config(_write(src, "name: r\ncorpus:\n  paths: [docs]\nsft:\n  lora_r: 4\n"))
    out = save_resolved(cfg, tmp_path / "run")
    assert out == tmp_path / "run" / CONFIG_RESOLVED
    saved = yaml.safe_load(out.read_text())
    assert saved["corpus"]["paths"] == [str(src / "docs")]  # absolute: the run dir is self-describing
    monkeypatch.chdir(tmp_path / "run")
    assert load_config(out).model_dump() == cfg.model_dump()


def test_open_run_saves_the_config_for_later_stages(tmp_path):
    path = _write(tmp_path, "name: first\nagent:\n  max_steps: 3\n")
    run_dir = tmp_path / "runs" / "a"
    cfg = open_run(run_dir, path)
    assert (run_dir / CONFIG_RESOLVED).is_file()
    later = open_run(run_dir)  # a later stage, no --config
    assert later.model_dump() == cfg.model_dump()
    assert later.agent.max_steps == 3


def test_open_run_without_any_config_uses_defaults_and_writes_nothing(tmp_path):
    cfg = open_run(tmp_path / "new")
    assert cfg.model_dump() == RunConfig().model_dump()
    assert not (tmp_path / "new").exists()


def test_open_run_with_a_new_config_replaces_the_saved_one(tmp_path):
    run_dir = tmp_path / "run"
    open_run(run_dir, _write(tmp_path, "name: one\n", "a.yaml"))
    open_run(run_dir, _write(tmp_path, "name: two\n", "b.yaml"))
    assert load_run_config(run_dir).name == "two"


def test_open_run_with_a_bad_config_keeps_the_saved_one(tmp_path):
    run_dir = tmp_path / "run"
    open_run(run_dir, _write(tmp_path, "name: good\n", "good.yaml"))
    before = (run_dir / CONFIG_RESOLVED).read_bytes()
    with pytest.raises(UserError):
        open_run(run_dir, _write(tmp_path, "name: bad\nsft:\n  lora_rr: 1\n", "bad.yaml"))
    assert (run_dir / CONFIG_RESOLVED).read_bytes() == before
    assert load_run_config(run_dir).name == "good"


def test_damaged_saved_config_is_reported_with_its_path(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CONFIG_RESOLVED).write_text("sft:\n  lora_r: [\n")
    with pytest.raises(UserError) as info:
        load_run_config(run_dir)
    assert CONFIG_RESOLVED in str(info.value)


def test_set_overrides_values_in_yaml_syntax_and_keeps_the_rest(tmp_path, monkeypatch):
    cfg = RunConfig()
    monkeypatch.chdir(tmp_path)
    out = apply_overrides(cfg, ["sft.epochs=3", "agent.constrain_tool_names=false", "tools.packs=[general]",
                                "questions.personas=people.yaml"])
    assert out.sft.epochs == 3.0 and out.agent.constrain_tool_names is False and out.tools.packs == ["general"]
    assert out.questions.personas == tmp_path / "people.yaml"  # relative to where the command runs
    assert out.sft.learning_rate == cfg.sft.learning_rate and cfg.sft.epochs != 3.0  # the rest, and the input, kept
    assert apply_overrides(cfg, None) is cfg


@pytest.mark.parametrize(("assignment", "expected"), [
    ("sft.epoch=2", "unknown key 'sft.epoch'. Did you mean 'epochs'?"),
    ("sft.epochs=many", "'sft.epochs'"),
    ("sft.epochs", "expected section.key=value"),
    ("swift.epochs=2", "unknown key 'swift'"),
    ("sft.epochs=[1", "not valid YAML"),
])
def test_a_bad_set_names_the_assignment_and_the_problem(assignment, expected):
    with pytest.raises(UserError, match=re.escape(expected)):
        apply_overrides(RunConfig(), [assignment])


@pytest.mark.parametrize(
    ("text", "key", "line", "expected"),
    [
        ("name: x\nquestions:\n  n_questions: -5\n", "questions.n_questions", 3, "greater than or equal to 1"),
        ("agent:\n  max_steps: 0\n", "agent.max_steps", 2, "greater than or equal to 1"),
        ("sft:\n  epochs: 1\n  learning_rate: -1\n", "sft.learning_rate", 3, "greater than 0"),
        ("sft:\n  max_steps: 0\n", "sft.max_steps", 2, "0 steps would train nothing"),
        ("sft:\n  lora_dropout: 1.5\n", "sft.lora_dropout", 2, "less than 1"),
        ("distill:\n  temperature: 0\n", "distill.temperature", 2, "greater than 0"),
        ("teacher:\n  concurrency: 0\n", "teacher.concurrency", 2, "greater than or equal to 1"),
        ("eval:\n  batch_size: -8\n", "eval.batch_size", 2, "greater than or equal to 1"),
        ("tools:\n  timeout_s: 0\n", "tools.timeout_s", 2, "greater than 0"),
        ("corpus:\n  max_document_mb: -1\n", "corpus.max_document_mb", 2, "greater than 0"),
        ("corpus:\n  chunk_tokens: 256\n  chunk_overlap: 200\n", "corpus", 1, "below half of chunk_tokens"),
        ("questions:\n  mix: {lookup: 1, lokup: 2}\n", "questions.mix", 2, "unknown kind 'lokup'"),
        ("questions:\n  mix: {lookup: 0, no_tool: 0}\n", "questions.mix", 2, "at least one above 0"),
        ("seed: -3\n", "seed", 1, "greater than or equal to 0"),
    ],
)
def test_out_of_range_values_are_refused_naming_key_file_and_line(tmp_path, text, key, line, expected):
    path = _write(tmp_path, text)
    msg = _error(path)
    assert f"{path}, line {line}: '{key}'" in msg
    assert expected in msg


def test_minus_one_still_means_train_for_epochs_and_zero_bootstrap_means_no_intervals(tmp_path):
    cfg = load_config(_write(tmp_path, "sft:\n  max_steps: -1\ndistill:\n  max_steps: -1\neval:\n  bootstrap: 0\n"))
    assert cfg.sft.max_steps == -1 and cfg.eval.bootstrap == 0


def test_documents_and_personas_that_do_not_exist_are_named_with_their_lines(tmp_path):
    (tmp_path / "docs").mkdir()
    path = _write(tmp_path, "corpus:\n  paths:\n    - docs\n    - lw.md\n    - '*.pdf'\n"
                            "questions:\n  personas: p.yaml\n")
    msg = _error(path)
    assert f"{path}, line 4: 'corpus.paths.1': no such file or folder (got '{tmp_path / 'lw.md'}')" in msg
    assert f"{path}, line 7: 'questions.personas': no such file or folder" in msg
    assert "paths.0" not in msg and "paths.2" not in msg  # an existing folder and a glob are fine


def test_a_runs_saved_config_loads_after_its_documents_moved(tmp_path):
    (tmp_path / "docs").mkdir()
    cfg = open_run(tmp_path / "run", _write(tmp_path, "corpus:\n  paths: [docs]\n"))
    (tmp_path / "docs").rmdir()
    assert load_run_config(tmp_path / "run").corpus.paths == cfg.corpus.paths
