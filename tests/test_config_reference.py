"""docs/configuration.md is generated from the config model and cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from agentdistill.config import RunConfig
from agentdistill.config_reference import COMMAND, all_keys, field_comments, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_committed_reference_is_generated_from_the_config_model():
    assert DOC.read_text(encoding="utf-8") == render(), f"docs/configuration.md is stale: run `{COMMAND}`"


def test_every_key_is_listed_with_a_meaning():
    text = render()
    entries = {line.split("`")[1]: line for line in text.splitlines() if line.lstrip().startswith("- **`")}
    keys = all_keys()
    assert set(RunConfig.model_fields) <= set(keys)
    for key in keys:
        if f"## `{key}`" in text:  # a section: its keys are listed below its heading
            continue
        assert key in entries, f"{key} is missing from the reference"
        assert "): " in entries[key], f"{key} has no description: add a comment beside it in config.py"


def test_comments_beside_or_above_a_field_are_its_meaning():
    from agentdistill.config import AgentConfig, ModelsConfig

    models = field_comments(ModelsConfig)
    assert models["student"] == "registry name, Hugging Face id, or local folder"  # beside
    assert models["generation_bf16"].startswith("Local models generate (eval, agent) in bf16")  # the block above
    assert field_comments(AgentConfig)["self_consistency"].startswith("N sampled candidate steps")
