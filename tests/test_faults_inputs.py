"""Faults a user can cause with inputs, config and the file system (issue 32), each through the real
`agentdistill` program in a fresh process: the outcome must be one readable line, a hint, exit status 2
and no traceback, with memory and time bounded.

Read-only directories and a full disk are real: the command runs in its own user and mount namespace
(``unshare -rm``), where a bind mount remounted read-only gives EROFS and a tiny tmpfs gives ENOSPC, and
both vanish with the process. Where unshare is not allowed those tests are skipped.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentdistill.cli import as_user_error

# Runs `agentdistill` and prints its peak resident memory last on stderr: the kernel's high-water mark of this
# program's own memory (VmHWM), not getrusage's ru_maxrss, which keeps the forking parent's peak across exec
# (inside a whole test run that is pytest's gigabytes of loaded models).
_MEASURED = (
    "import re, sys\n"
    "from agentdistill.cli import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    hwm = int(re.search(r'VmHWM:\\s*(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
    "    print(f'peak_rss_mb={hwm // 1024}', file=sys.stderr)\n"
)


def _agentdistill(*args: str, stdin: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.run([sys.executable, "-c", _MEASURED, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _peak_mb(result: subprocess.CompletedProcess) -> int:
    return int(re.search(r"peak_rss_mb=(\d+)", result.stderr).group(1))


def _namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_unshare = pytest.mark.skipif(not _namespaces_work(), reason="unshare -rm (user and mount namespaces) not allowed")


def _in_namespace(setup: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`agentdistill ARGS` after the shell commands ``setup`` (mounts) in a private user and mount namespace."""
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-c", _MEASURED, *args])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"{setup} && exec {command}"], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _read_only(folder: Path) -> str:
    return f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder}"


def _one_readable_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for text in expected:  # the run lock, taken first, words an OS error as the OS does ("Read-only ...")
        assert text.lower() in result.stderr.lower(), result.stderr
    assert "hint: " in result.stderr


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nA worker gets 30 days of annual leave a year.\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A run with one tiny document ingested for real (tokenizer, embedder and index: ~40 s on 2 CPUs)."""
    base = tmp_path_factory.mktemp("ingested")
    (base / "docs").mkdir()
    (base / "docs" / "leave.md").write_text("# Leave\n\nA worker gets 30 days of annual leave.\n", encoding="utf-8")
    result = _agentdistill("ingest", str(base / "docs"), "--run", str(base / "run"))
    assert result.returncode == 0, result.stderr
    return base / "run"


# --- bounded inputs -------------------------------------------------------------------------------------


def test_a_50_mb_one_line_file_is_skipped_at_once_with_bounded_memory(tmp_path):
    big = tmp_path / "docs" / "dump.txt"
    big.parent.mkdir()
    words = b"the employer shall pay the worker the wage owed under article fifty one "
    big.write_bytes(words * (50_000_000 // len(words)))
    start = time.perf_counter()
    result = _agentdistill("ingest", str(big.parent), "--run", str(tmp_path / "run"))
    seconds = time.perf_counter() - start
    _one_readable_error(result, "50.0 MB, over the limit of 20 MB per document (corpus.max_document_mb)")
    assert seconds < 60  # it took more than 5 minutes
    assert _peak_mb(result) < 500  # it took 6 GB


def test_a_long_one_line_document_is_chunked_in_windows_with_bounded_memory(tmp_path):
    """Over the limit raised: chunking streams through windows, reports progress and holds one window."""
    code = """
import random, resource, sys
from agentdistill.corpus.chunk import chunk_document
from agentdistill.corpus.read import Document
from agentdistill.models.registry import load_tokenizer

tok = load_tokenizer("smollm2-135m")
encode = lambda t: tok.encode(t, add_special_tokens=False)
rng = random.Random(0)
words = "the employer shall pay the worker wage overtime gratuity leave notice period article law".split()
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
for n_words in (30_000, 250_000):  # one line, no sentence break: ~0.2 MB to warm up (imports), then ~1.6 MB
    text = " ".join(rng.choice(words) for _ in range(n_words))
    before, done = peak(), []
    chunks = chunk_document(Document("/d.txt", "D", text, "text"), encode, 512, 64, on_progress=done.append)
print(len(text), sum(done), len(chunks), max(c.n_tokens for c in chunks), peak() - before)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    n_chars, progressed, n_chunks, largest, grew_mb = map(int, result.stdout.split())
    assert progressed == n_chars  # every character reported as it was chunked
    # the splitter counts words apart and a joined piece can tokenize a token longer
    assert n_chunks > 200 and largest <= 512 + 8
    # 8x the text, and the peak hardly moves: one window at a time (the whole text at once grew with it, to 6 GB
    # for 50 MB)
    assert grew_mb < 40, grew_mb


def test_a_50000_digit_expression_is_refused_fast_through_the_tool_registry():
    from agentdistill.config import RunConfig
    from agentdistill.tools import load_tools

    tools = load_tools(RunConfig(), None)
    start = time.perf_counter()
    result = tools.call("calculator", {"expression": "1" * 50_000})
    assert time.perf_counter() - start < 1.0  # 137 s before
    assert not result.ok and "50000 characters long" in result.content


# --- config ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("questions:\n  n_questions: -5\n", "questions.n_questions", 2),
        ("agent:\n  max_steps: 0\n", "agent.max_steps", 2),
        ("sft:\n  epochs: 1\n  learning_rate: -1\n", "sft.learning_rate", 3),
    ],
)
def test_a_bad_count_in_the_config_stops_the_command_naming_key_file_and_line(tmp_path, docs, text, key, line):
    config = tmp_path / "run.yaml"
    config.write_text(text, encoding="utf-8")
    result = _agentdistill("ingest", str(docs), "--run", str(tmp_path / "run"), "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert f"{config}, line {line}: '{key}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "chunks.jsonl").exists()


# --- OS errors --------------------------------------------------------------------------------------------


@needs_unshare
def test_ingest_into_a_read_only_run_directory_is_one_line_with_a_hint(tmp_path, docs):
    run = tmp_path / "run"
    run.mkdir()
    result = _in_namespace(_read_only(run), "ingest", str(docs), "--run", str(run))
    _one_readable_error(result, "read-only file system", str(run))


@needs_unshare
def test_debug_shows_the_traceback_of_the_same_error(tmp_path, docs):
    run = tmp_path / "run"
    run.mkdir()
    result = _in_namespace(_read_only(run), "--debug", "ingest", str(docs), "--run", str(run))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "Read-only file system" in result.stderr


@needs_unshare
def test_a_read_only_vector_index_is_one_line_not_a_chromadb_traceback(tmp_path, docs):
    from agentdistill.corpus.index import ChunkIndex

    run = tmp_path / "run"
    ChunkIndex(run / "index")  # an index from an earlier ingest, now on a read-only mount
    result = _in_namespace(_read_only(run / "index"), "ingest", str(docs), "--run", str(run))
    _one_readable_error(result, "the run's vector index cannot be written", "read-only")


@needs_unshare
def test_questions_into_a_read_only_run_directory_is_one_line_with_a_hint(ingested):
    result = _in_namespace(_read_only(ingested), "questions", "--run", str(ingested))
    _one_readable_error(result, "read-only file system")
    assert not (ingested / "questions.jsonl").exists()


@needs_unshare
def test_a_full_disk_is_one_line_that_says_so_and_how_to_resume(tmp_path, docs):
    run = tmp_path / "run"
    run.mkdir()
    result = _in_namespace(f"mount -t tmpfs -o size=32k tmpfs {run}", "ingest", str(docs), "--run", str(run))
    _one_readable_error(result, "cannot be written", "full")
    assert "run the same command again" in result.stderr


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "no space left on the device: /r/traces.jsonl."),
        (errno.EACCES, "permission denied: /r/traces.jsonl."),
        (errno.EROFS, "read-only file system: /r/traces.jsonl."),
        (errno.ENOENT, "no such file or folder: /r/traces.jsonl."),
    ],
)
def test_each_os_error_a_user_can_cause_becomes_a_user_error(code, expected):
    error = as_user_error(OSError(code, os.strerror(code), "/r/traces.jsonl"))
    assert error is not None and error.message == expected and error.hint


def test_other_errors_stay_bugs_with_their_traceback():
    assert as_user_error(OSError(errno.EBADF, "Bad file descriptor")) is None
    assert as_user_error(ValueError("a real bug")) is None


# --- models ----------------------------------------------------------------------------------------------


def test_a_missing_adapter_folder_is_reported_as_a_folder_not_a_hub_model(ingested):
    result = _agentdistill("chat", "--model", "adapters/nonexistent", "--run", str(ingested), stdin="hi\n")
    _one_readable_error(result, "no adapter or model folder 'adapters/nonexistent'",
                        str(ingested / "adapters" / "nonexistent"))
    assert "Hugging Face" not in result.stderr.split("hint:")[0]


def test_a_missing_model_path_is_reported_as_a_path_by_the_registry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _agentdistill("models", "prepare", "./models/nonexistent")
    _one_readable_error(result, "no adapter or model folder './models/nonexistent'")
    assert "Hugging Face" not in result.stderr.split("hint:")[0]
