"""Crash-safe JSON Lines: torn tails are ignored by readers and cut by appenders, atomic writes never
leave a partial file, and a writer killed with SIGKILL mid-loop loses nothing it finished."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentdistill import jsonl
from agentdistill.errors import UserError
from agentdistill.jsonl import (
    JsonlAppender,
    iter_json,
    read_records,
    repair_torn_tail,
    write_json_atomic,
    write_records,
    write_text_atomic,
)
from agentdistill.records import Chunk

LAW = "Federal Decree-Law 33/2021 > Art. 29 > Annual leave"


def _chunk(i: int) -> Chunk:
    return Chunk(id=f"c{i}", doc_id="dl33", source="dl33.md", title="Leave", section_path=LAW, text=f"t{i}", n_tokens=i)


def _lines(*objs) -> bytes:
    return b"".join((json.dumps(o, ensure_ascii=False) + "\n").encode() for o in objs)


# --- readers ------------------------------------------------------------------------------------


LAST = (json.dumps({"i": 2, "text": "مادة ٢٩ – إجازة"}, ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize(
    "cut",
    [1, 5, LAST.index("مادة".encode()) + 1, len(LAST) - 2],
    ids=["after-brace", "inside-key", "inside-utf8-char", "before-closing-brace"],
)
def test_reader_ignores_a_torn_last_line(tmp_path, cut):
    path = tmp_path / "x.jsonl"
    path.write_bytes(_lines({"i": 0}, {"i": 1}) + LAST[:cut])
    assert [o["i"] for o in iter_json(path)] == [0, 1]


def test_reader_keeps_a_whole_last_record_that_lacks_its_newline(tmp_path):
    # hand-written files often end without a newline: that record is complete and must not be lost
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i": 0}\n{"i": 1}')
    assert [o["i"] for o in iter_json(path)] == [0, 1]


def test_reader_skips_blank_lines_and_names_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i": 0}\n\n   \n{"i": 1}\n')
    assert [o["i"] for o in iter_json(path)] == [0, 1]
    path.write_bytes(b'{"i": 0}\n{"i": 1, oops}\n{"i": 2}\n')
    with pytest.raises(UserError) as info:
        list(iter_json(path))
    assert f"{path}:2:" in info.value.message
    assert info.value.hint


def test_read_records_validates_and_names_the_record(tmp_path):
    path = tmp_path / "chunks.jsonl"
    write_records(path, [_chunk(0), _chunk(1)])
    assert read_records(path, Chunk) == [_chunk(0), _chunk(1)]
    with open(path, "a") as f:
        f.write(json.dumps({**_chunk(2).model_dump(), "n_tokens": "many"}) + "\n")
    with pytest.raises(UserError) as info:
        read_records(path, Chunk)
    assert "record 3" in info.value.message and "n_tokens" in info.value.message and "Chunk" in info.value.message


def test_read_records_of_a_missing_file_says_which_stage_to_run(tmp_path):
    with pytest.raises(UserError) as info:
        read_records(tmp_path / "questions.jsonl", Chunk)
    assert "questions.jsonl" in info.value.message
    assert "stage" in info.value.hint


# --- appender -----------------------------------------------------------------------------------


def test_appender_cuts_a_torn_tail_then_appends_after_the_complete_records(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_bytes(_lines({"i": 0}, {"i": 1}) + b'{"i": 2, "text": "half')
    with JsonlAppender(path) as out:
        out.append({"i": 2})
    assert path.read_bytes() == _lines({"i": 0}, {"i": 1}, {"i": 2})


def test_appender_on_a_file_that_is_only_a_torn_line_starts_empty(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i": 0, "te')
    with JsonlAppender(path) as out:
        out.append({"i": 0})
    assert path.read_bytes() == _lines({"i": 0})


def test_appender_ends_a_whole_last_record_instead_of_cutting_it(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i": 0}\n{"i": 1}')
    with JsonlAppender(path) as out:
        out.append({"i": 2})
    assert [o["i"] for o in iter_json(path)] == [0, 1, 2]


def test_repair_reports_whether_it_changed_the_file(tmp_path):
    path = tmp_path / "x.jsonl"
    assert repair_torn_tail(path) is False  # missing file: nothing to do, nothing created
    assert not path.exists()
    path.write_bytes(_lines({"i": 0}))
    assert repair_torn_tail(path) is False
    path.write_bytes(_lines({"i": 0}) + b'{"i"')
    assert repair_torn_tail(path) is True
    assert path.read_bytes() == _lines({"i": 0})


def test_appender_writes_models_and_dicts_as_readable_utf8(tmp_path):
    path = tmp_path / "deep" / "er" / "chunks.jsonl"  # parents are created
    with JsonlAppender(path) as out:
        out.append(_chunk(0))
        out.append({**_chunk(1).model_dump(), "text": "العامل يستحق إجازة"})
    assert "العامل يستحق إجازة".encode() in path.read_bytes()  # not \\u-escaped
    assert [c.id for c in read_records(path, Chunk)] == ["c0", "c1"]


def test_appended_records_are_on_disk_before_close(tmp_path):
    path = tmp_path / "x.jsonl"
    out = JsonlAppender(path)
    out.append({"i": 0})
    assert path.read_bytes() == _lines({"i": 0})  # flushed per record, not at close
    out.close()


# --- atomic writes ------------------------------------------------------------------------------


class _FailingFile:
    """A real file whose write stops half way with ENOSPC: the fault a full disk injects."""

    def __init__(self, f, error: BaseException):
        self._f, self._error = f, error

    def write(self, text: str) -> int:
        self._f.write(text[: len(text) // 2])
        self._f.flush()
        raise self._error

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, error):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"n": 1})
    old = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(jsonl.os, "fdopen", lambda *a, **k: _FailingFile(real_fdopen(*a, **k), error))
    with pytest.raises(type(error)):
        write_text_atomic(path, json.dumps({"n": 2, "pad": "x" * 100_000}))
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_failed_first_write_leaves_no_file_at_all(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(jsonl.os, "replace", refuse)
    with pytest.raises(OSError):
        write_records(tmp_path / "questions.jsonl", [{"i": 0}])
    assert list(tmp_path.iterdir()) == []


def test_write_records_replaces_the_whole_file(tmp_path):
    path = tmp_path / "x.jsonl"
    assert write_records(path, [{"i": i} for i in range(5)]) == 5
    assert write_records(path, [_chunk(0)]) == 1
    assert read_records(path, Chunk) == [_chunk(0)]
    write_json_atomic(tmp_path / "m.json", {"rate": 0.5, "name": "مادة"})
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8")) == {"rate": 0.5, "name": "مادة"}


def test_atomic_write_gives_the_permissions_a_plain_open_gives(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "atomic.txt", "x")
    mode = stat.S_IMODE
    assert mode((tmp_path / "atomic.txt").stat().st_mode) == mode(plain.stat().st_mode)


# --- a real crash -------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from agentdistill.jsonl import JsonlAppender, iter_json

    path = Path(sys.argv[1])
    done = sum(1 for _ in iter_json(path)) if path.exists() else 0  # resume after the last whole record
    with JsonlAppender(path) as out:
        i = done
        while True:
            # 64 KB lines span 16 pages: the kernel may end a write() between pages when SIGKILL comes
            out.append({"i": i, "payload": f"{i:08d}" * 8192})
            i += 1
    """
)


def _run_and_kill(path: Path, at_least: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while not (path.exists() and path.read_bytes().count(b"\n") >= at_least):
            assert proc.poll() is None, "the writer died on its own"
            assert time.monotonic() < deadline, "the writer wrote too little in 60 s"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _check_whole_and_contiguous(path: Path) -> int:
    records = list(iter_json(path))
    assert [r["i"] for r in records] == list(range(len(records)))  # no gap, no duplicate
    assert all(r["payload"] == f"{r['i']:08d}" * 8192 for r in records)  # no half record
    return len(records)


def test_writer_killed_twice_while_appending_loses_no_finished_record(tmp_path):
    path = tmp_path / "traces.jsonl"
    _run_and_kill(path, at_least=3)
    first = _check_whole_and_contiguous(path)
    assert first >= 3
    _run_and_kill(path, at_least=first + 3)  # the resumed writer carries on after the last whole record
    assert _check_whole_and_contiguous(path) >= first + 3
    with JsonlAppender(path):  # reopening cuts whatever the kill tore
        pass
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert all(json.loads(line) for line in data.splitlines())
