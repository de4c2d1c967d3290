"""One writer per run directory and stage: a lock that names its holder and outlives no process.

Two processes appending to one run's files interleave their records (two ``traces`` on one run each
recorded every question once, so the file held every question twice). Every stage that writes a run
directory therefore holds ``<run>/.locks/<stage>.lock`` while it runs, and the whole pipeline (``demo``,
``run``) holds ``<run>/.locks/run.lock``:

- The lock is the operating system's (``flock``). It belongs to the open file, so it ends with its
  holder however that ends, SIGKILL included: a lock file a dead process left behind is simply taken
  over, and the warning names the pid it recorded.
- The file records its holder (pid, command, start time), so a process that is refused can say who
  holds the lock; a clean release empties it, so a leftover record always means a process died.
- A stage holds its own lock exclusively and ``run.lock`` shared; the pipeline holds ``run.lock``
  exclusively. So the pipeline excludes every stage started by hand, stages with different names (the
  evals of two models) may run side by side, and the stages the pipeline starts itself, its child
  processes, are told through ``AGENTDISTILL_RUN_LOCKS`` that their ancestor holds ``run.lock``.
- A process may take a lock it already holds (nested use is counted).

Where the filesystem offers no ``flock`` (some network filesystems, Windows), the recorded holder is
checked instead: a lock whose process is alive (same pid and start time) is refused, any other taken.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdistill.errors import UserError
from agentdistill.run_layout import LOCK_SUFFIX, RunLayout

try:
    import fcntl
except ImportError:  # Windows: only the recorded pid protects the run there
    fcntl = None  # type: ignore[assignment]

PIPELINE = "run"  # the lock name of `demo` / `run`, which write the whole run directory
ENV = "AGENTDISTILL_RUN_LOCKS"  # JSON {lock file: pid} of the locks this process's ancestors hold


@dataclass
class _Held:
    fd: int
    shared: bool
    count: int = 1


_held: dict[str, _Held] = {}  # lock file (resolved) -> the lock this process holds on it


def lock_path(run_dir: Path, stage: str) -> Path:
    """The lock file of ``stage`` in ``run_dir`` (a name with a slash, like a model id, is flattened)."""
    return RunLayout(run_dir).lock(stage)


def holder(path: Path) -> dict[str, Any] | None:
    """The process recorded in a lock file, or None (no file, a released lock, or no record yet)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("pid"), int) else None


def is_alive(owner: dict[str, Any]) -> bool:
    """Whether the recorded process still runs: same pid and same start (a reused pid is another process).
    A holder on another machine cannot be checked and counts as alive."""
    import psutil

    if owner.get("host") not in (None, socket.gethostname()):
        return True
    ticks = _start_ticks(owner["pid"])
    if ticks is not None and isinstance(owner.get("start_ticks"), int):
        return ticks == owner["start_ticks"]
    try:
        created = psutil.Process(owner["pid"]).create_time()
    except (psutil.Error, ValueError):
        return False
    # the wall-clock start moves when the system clock is stepped (NTP), so it is only a fallback
    return owner.get("created") is None or abs(created - owner["created"]) < 1.0


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux), or None where that is not known. Unlike a
    wall-clock start time it never moves, so a long stage still recognises the process that started it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22; the name before ")" may hold spaces
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def run_lock(run_dir: Path, stage: str, *, create: bool = False) -> Iterator[None]:
    """Hold ``stage``'s lock on ``run_dir`` for the ``with`` block; ``stage`` ``"run"`` is the pipeline's.

    Raises UserError ("another agentdistill process (pid N) is writing <run>") when a live process holds
    it. A run directory that does not exist is created with ``create``; otherwise there is nothing to
    protect yet and the stage reports its missing inputs itself.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        if not create:
            yield
            return
        run_dir.mkdir(parents=True, exist_ok=True)
    if os.environ.get("RANK") not in (None, "0"):  # one launch of several ranks: rank 0 holds it for all
        yield
        return
    with ExitStack() as stack:
        if stage == PIPELINE:
            stack.enter_context(_lock(run_dir, PIPELINE, shared=False))
            stack.enter_context(_tell_children(lock_path(run_dir, PIPELINE)))
        else:
            stack.enter_context(_lock(run_dir, stage, shared=False))
            if not _ancestor_holds(lock_path(run_dir, PIPELINE)):
                stack.enter_context(_lock(run_dir, PIPELINE, shared=True))
        yield


@contextmanager
def _lock(run_dir: Path, name: str, shared: bool) -> Iterator[None]:
    path = lock_path(run_dir, name)
    key = str(path.resolve())
    if key in _held:  # nested: this process holds it already
        _held[key].count += 1
        try:
            yield
        finally:
            _held[key].count -= 1
        return
    try:  # the first write of every stage: a run directory it may not write to fails here, readably
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise UserError(f"cannot write in {run_dir}: {e.strerror or e} ({path}).",
                        hint="Check the directory's permissions and free space, or give another --run.") from e
    try:
        got = _os_lock(fd, shared)
        if got is None:  # no OS lock on this filesystem: the recorded holders decide
            got = _live_holder(run_dir, name, shared) is None
        if not got:
            raise _refusal(run_dir, name, shared)
        previous = holder(path)
        if not shared:
            if previous and previous["pid"] != os.getpid():
                _warn(f"warning: took over the lock on {run_dir} that pid {previous['pid']} "
                      f"({previous.get('command', '?')}) left behind: that process is gone.")
            _record(fd, name)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = _Held(fd, shared)
    try:
        yield
    finally:
        held = _held[key]
        held.count -= 1
        if held.count == 0:
            del _held[key]
            if not shared:
                os.ftruncate(fd, 0)  # released cleanly: nobody to take over from
            os.close(fd)


def _os_lock(fd: int, shared: bool) -> bool | None:
    """True: locked; False: another open file holds it; None: this filesystem has no such locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise


def _record(fd: int, name: str) -> None:
    import psutil

    me = {"pid": os.getpid(), "created": psutil.Process().create_time(), "start_ticks": _start_ticks(os.getpid()),
          "host": socket.gethostname(), "stage": name, "command": " ".join(["agentdistill", *sys.argv[1:]])[:300],
          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(me) + "\n").encode("utf-8"))
    os.fsync(fd)


def _refusal(run_dir: Path, name: str, shared: bool) -> UserError:
    """The error naming the process that holds the lock this one could not take."""
    owner = None
    for _ in range(20):  # a holder that has just taken the lock writes its record a moment later
        owner = _live_holder(run_dir, name, shared)
        if owner:
            break
        time.sleep(0.05)
    pid = owner["pid"] if owner else "unknown"
    doing = f" ({owner.get('command', owner.get('stage'))}, since {owner.get('started', '?')})" if owner else ""
    return UserError(
        f"another agentdistill process (pid {pid}) is writing {run_dir}{doing}.",
        hint="Wait for it to finish or stop it, then run this command again. A lock whose process has died "
        "is taken over by itself.",
    )


def _live_holder(run_dir: Path, name: str, shared: bool) -> dict[str, Any] | None:
    """The live process (not this one) that holds ``name``, by the records: the lock's own; for the
    pipeline's lock taken exclusively also a stage's, since a stage holding it shared records itself in
    its own lock file only."""
    paths = [lock_path(run_dir, name)]
    if name == PIPELINE and not shared:
        paths += sorted(p for p in paths[0].parent.glob(f"*{LOCK_SUFFIX}") if p != paths[0])
    for path in paths:
        owner = holder(path)
        if owner and owner["pid"] != os.getpid() and is_alive(owner):
            return owner
    return None


def _ancestor_holds(path: Path) -> bool:
    """Whether the process that started this one holds ``path`` (a pipeline running its stages)."""
    try:
        pid = json.loads(os.environ.get(ENV) or "{}").get(str(path.resolve()))
    except ValueError:
        return False
    owner = holder(path)
    return pid is not None and owner is not None and owner["pid"] == pid and is_alive(owner)


@contextmanager
def _tell_children(path: Path) -> Iterator[None]:
    before = os.environ.get(ENV)
    try:
        held = json.loads(before or "{}")
    except ValueError:
        held = {}
    os.environ[ENV] = json.dumps({**held, str(path.resolve()): os.getpid()})
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def _warn(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[yellow]{message}[/]", soft_wrap=True)  # a path stays whole
