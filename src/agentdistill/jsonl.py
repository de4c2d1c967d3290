"""Crash-safe JSON Lines files: the storage under every stage.

A record is appended as one ``write`` of one line, then flushed and fsynced, so a process killed at
any moment leaves at most one partial line at the end of the file. Readers ignore (and appenders cut
off) such a torn tail, so a resumed stage neither loses a finished record nor keeps half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentdistill.errors import UserError

M = TypeVar("M", bound=BaseModel)

# mkstemp makes 0600 files; atomic writes should get the permissions a plain open() would give.
_UMASK = os.umask(0)
os.umask(_UMASK)


def _complete_length(path: Path) -> int:
    """Byte length of the file up to and including its last newline."""
    with open(path, "rb") as f:
        data = f.read()
    return data.rfind(b"\n") + 1


def _is_whole_record(tail: bytes) -> bool:
    """A last line without its newline is a whole record when it parses as an object (a hand-written
    file often lacks the final newline); no proper prefix of a JSON object parses as one."""
    try:
        return isinstance(json.loads(tail), dict)
    except ValueError:
        return False


def repair_torn_tail(path: Path) -> bool:
    """Truncate a partial last line left by a killed writer (or end a whole one with its missing
    newline). Returns True when the file was changed."""
    if not path.exists():
        return False
    keep = _complete_length(path)
    if keep == path.stat().st_size:
        return False
    with open(path, "r+b") as f:
        f.seek(keep)
        if _is_whole_record(f.read()):
            f.write(b"\n")
        else:
            f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return True


def iter_json(path: Path) -> Iterator[dict[str, Any]]:
    """Yield each complete line of ``path`` as a dict; a torn last line is skipped silently."""
    with open(path, "rb") as f:
        data = f.read()
    complete = data[: data.rfind(b"\n") + 1]
    if _is_whole_record(data[len(complete) :]):
        complete = data + b"\n"
    for lineno, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno}).",
                hint="The file was edited by hand or damaged; fix or delete that line and run the stage again.",
            ) from e


def read_records(path: Path, model: type[M]) -> list[M]:
    """Read and validate every record of a canonical JSONL file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist.", hint="Run the stage that writes it first.")
    out: list[M] = []
    for lineno, obj in enumerate(iter_json(path), start=1):
        try:
            out.append(model.model_validate(obj))
        except ValidationError as e:
            raise UserError(
                f"{path}: record {lineno} is not a valid {model.__name__}: {e.errors()[0]['msg']} "
                f"at {'.'.join(map(str, e.errors()[0]['loc']))}",
                hint="Regenerate the file with the stage that writes it.",
            ) from e
    return out


def count_lines(path: Path) -> int:
    """The records in a JSONL file, duplicates included (blank lines and a torn tail are not records)."""
    path = Path(path)
    return sum(1 for _ in iter_json(path)) if path.exists() else 0


def drop_duplicates(path: Path, key: str, also: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Rewrite ``path`` with only the first record of each ``key`` value, and none whose value is in
    ``also``; returns the value of every line dropped. Two writers appending to one file (before runs
    were locked) left every record twice; a later run must not keep or count them. The rewrite is
    atomic, and the file is untouched when nothing is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    repair_torn_tail(path)
    kept: list[bytes] = []
    seen: set[str] = set()
    dropped: list[str] = []
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = str(json.loads(line)[key])
            except (ValueError, TypeError, KeyError) as e:
                raise UserError(f"{path}:{lineno}: not a JSON record with {key!r}.",
                                hint="The file was edited by hand or damaged; fix or delete that line.") from e
            if value in seen or value in also:
                dropped.append(value)
            else:
                seen.add(value)
                kept.append(line)
    if dropped:
        write_text_atomic(path, b"".join(kept).decode("utf-8"))
    return dropped


class JsonlAppender:
    """Append records durably, one line per record; use as a context manager."""

    def __init__(self, path: Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fsync = fsync
        self._f = open(self.path, "ab")  # noqa: SIM115 (closed by close()/__exit__)

    def append(self, record: BaseModel | dict[str, Any]) -> None:
        obj = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        line = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
        self._f.write(line)
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_records(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write a whole JSONL file atomically (temp file + rename). Returns the number of records."""
    lines = []
    for r in records:
        obj = r.model_dump(mode="json") if isinstance(r, BaseModel) else r
        lines.append(json.dumps(obj, ensure_ascii=False))
    write_text_atomic(Path(path), "".join(line + "\n" for line in lines))
    return len(lines)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that readers see either the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
