"""The model cache: complete-or-absent folders, one build under concurrency, fast reuse."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentdistill.models.cache import MARKER, build_once, read_marker
from agentdistill.models.registry import BUNDLED, prepare


def _writer(calls: list[Path]):
    def build(tmp: Path) -> dict:
        calls.append(tmp)
        (tmp / "weights.bin").write_bytes(b"w" * 1000)
        return {"name": "toy"}

    return build


def test_build_once_builds_then_reuses(tmp_path):
    calls: list[Path] = []
    dest = tmp_path / "models" / "toy"
    dest.parent.mkdir()
    assert build_once(dest, _writer(calls)) == dest
    assert build_once(dest, _writer(calls)) == dest
    assert len(calls) == 1
    assert read_marker(dest)["name"] == "toy"
    assert (dest / "weights.bin").stat().st_size == 1000
    assert not list(dest.parent.glob(".tmp+*"))


def test_folder_without_marker_is_not_used_but_rebuilt(tmp_path):
    dest = tmp_path / "toy"
    dest.mkdir()
    (dest / "weights.bin").write_bytes(b"half")  # a copy killed halfway, or by hand
    assert read_marker(dest) is None
    calls: list[Path] = []
    build_once(dest, _writer(calls))
    assert len(calls) == 1
    assert (dest / "weights.bin").read_bytes() == b"w" * 1000


def test_marker_of_an_older_format_means_rebuild(tmp_path):
    dest = tmp_path / "toy"
    dest.mkdir()
    (dest / MARKER).write_text(json.dumps({"format": 0, "name": "old"}))
    calls: list[Path] = []
    build_once(dest, _writer(calls))
    assert len(calls) == 1 and read_marker(dest)["name"] == "toy"


def test_half_written_temp_folder_is_never_used_and_is_cleaned(tmp_path):
    stale = tmp_path / ".tmp+toy+abc123"
    other = tmp_path / ".tmp+toy-2+abc123"  # another model's build in progress: left alone
    other.mkdir()
    stale.mkdir()
    (stale / "weights.bin").write_bytes(b"partial")
    (stale / MARKER).write_text(json.dumps({"format": 1, "name": "stale"}))  # even with a marker
    calls: list[Path] = []
    dest = build_once(tmp_path / "toy", _writer(calls))
    assert len(calls) == 1 and read_marker(dest)["name"] == "toy"
    assert not stale.exists() and other.exists()


def test_failed_build_leaves_nothing_behind(tmp_path):
    def broken(tmp: Path) -> dict:
        (tmp / "weights.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(tmp_path / "toy", broken)
    assert not (tmp_path / "toy").exists()
    assert not list(tmp_path.glob(".tmp+*"))


def test_two_processes_preparing_at_once_build_once(tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from agentdistill.models.cache import build_once

        def build(tmp):
            with open({str(tmp_path / "calls.log")!r}, "a") as f:
                f.write("built\\n")
            time.sleep(1.0)  # long enough that the other process arrives while this one builds
            (tmp / "weights.bin").write_bytes(b"w")
            return {{"name": "toy"}}

        print(build_once(Path({str(tmp_path / "toy")!r}), build))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == [str(tmp_path / "toy")] * 2
    assert (tmp_path / "calls.log").read_text() == "built\n"


def test_second_prepare_of_bundled_models_is_fast_and_reuses_the_folder(bundled_models):
    for name, folder in bundled_models.items():
        marker = read_marker(folder)
        assert marker["name"] == name and marker["source"] == "bundled"
        mtime = (folder / MARKER).stat().st_mtime_ns
        t0 = time.perf_counter()
        again = prepare(name)
        assert time.perf_counter() - t0 < 10
        assert again == folder and (folder / MARKER).stat().st_mtime_ns == mtime
    assert set(bundled_models) == set(BUNDLED)


def test_prepared_folder_is_a_plain_hf_folder(bundled_models):
    for folder in bundled_models.values():
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", MARKER} <= names
        config = json.loads((folder / "config.json").read_text())
        assert "quantization_config" not in config
        marker = read_marker(folder)
        assert marker["gguf"]["size"] > 0 and len(marker["gguf"]["sha256"]) == 64
        assert marker["logits_check"]["max_abs_diff"] == 0.0  # checked against the GGUF model at conversion
        assert marker["params"] > 100e6 and marker["vocab"] > 30_000
