"""The model cache: folders that are either complete or absent, never half-written.

A prepared model lives in ``<cache>/models/<slug>/``. It is built in a temp folder beside it
(``.tmp+<slug>+*``, same filesystem), every file is fsynced, the completion marker
``agentdistill.json`` is written last, and only then the temp folder is renamed into place. A
folder without a readable marker of the current format is treated as absent and rebuilt, so a
crash at any moment costs at most the work in flight. Builders of the same slug take a file lock,
so two processes preparing at once do the work once and both get the finished folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

MARKER = "agentdistill.json"
FORMAT = 1  # bump when the folder layout changes: older folders are rebuilt


def cache_root(cache_dir: Path | None = None) -> Path:
    """ModelsConfig.cache_dir, else $AGENTDISTILL_CACHE, else ~/.cache/agentdistill."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("AGENTDISTILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agentdistill"


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a complete folder, or None when the folder is missing, partial or outdated."""
    try:
        info = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == FORMAT else None


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``<path>.lock`` (blocks until free)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        yield


def build_once(dest: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Return ``dest`` complete, calling ``build(tmp_dir) -> marker`` only when it is not.

    ``build`` fills the empty temp folder and returns the marker's contents; the marker gets
    ``format`` added and is written after everything else is on disk.
    """
    dest = Path(dest)
    if read_marker(dest) is not None:
        return dest  # fast path: no lock needed to read a finished folder
    with locked(dest):
        if read_marker(dest) is not None:
            return dest  # another process finished it while we waited
        if dest.exists():
            shutil.rmtree(dest)  # partial or outdated: never used, rebuilt from scratch
        # "+" never occurs in a slug, so this cannot match another model's build in progress
        for stale in dest.parent.glob(f".tmp+{dest.name}+*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed builder; we hold the lock
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp+{dest.name}+", dir=dest.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a cache folder is as shared as its parent
        try:
            marker = {"format": FORMAT, **build(tmp)}
            _fsync_tree(tmp)
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            _fsync_tree(tmp)
            os.rename(tmp, dest)
            _fsync_dir(dest.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest
