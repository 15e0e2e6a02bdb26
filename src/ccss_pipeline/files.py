"""Atomic file and folder writes, the one home for them (datasets, checkpoints, models).

A write goes to a hidden temporary sibling ``.<name>.tmp-<pid>-<random>`` and is renamed over the
target only when complete, so a killed or failing save never leaves a half-written artifact where a
later stage would read it. Temporaries left by a process that no longer runs (a kill mid-save) are
swept at the next write of the same target. A folder is swapped in through a backup of the old one; a
kill between the two renames leaves no target, only that backup, which the next save or load of the
target puts back (:func:`restore_interrupted_swap`). A failed write raises :class:`ArtifactWriteError`,
which names the target file (and says so when the disk is full).
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


class ArtifactWriteError(OSError):
    """An artifact could not be written; the message names the file, and the old one is untouched."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner_pid(path: Path, target: Path) -> int | None:
    """The pid in ``.<name>.tmp-<pid>-<random>`` / ``.<name>.old-<pid>-<random>``, None if not ours."""
    for marker in (".tmp-", ".old-"):
        prefix = f".{target.name}{marker}"
        if path.name.startswith(prefix):
            head = path.name[len(prefix) :].split("-", 1)[0]
            return int(head) if head.isdigit() else -1  # -1: an older naming scheme, no owner to ask
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _swap_abandoned(pid: int | None) -> bool:
    """Whether a backup named with ``pid`` belongs to no swap in progress: its process is gone, it is an
    older naming scheme (-1), or it is this process's own (a swap of ours that was interrupted)."""
    if pid is None:
        return False
    return pid == -1 or pid == os.getpid() or not _pid_alive(pid)


def restore_interrupted_swap(target: Path | str) -> Path | None:
    """Put back the old version of ``target`` when a swap was interrupted between its two renames.

    :func:`replace_path` moves the old folder aside (``.<name>.old-<pid>-<random>``) before moving the
    new one in; a kill (or a failing disk) between the two leaves no ``target``, only hidden copies, and
    the next stage would report the output missing — or a sweep would delete the last copy. When
    ``target`` is absent, its newest abandoned backup is renamed back (logged); a backup of a live
    process is left alone, as that process may be between its renames. Returns the backup it restored.
    """
    target = Path(target)
    if target.exists() or target.is_symlink() or not target.parent.is_dir():
        return None
    pattern = f".{glob.escape(target.name)}.old-*"
    backups = [p for p in target.parent.glob(pattern) if _swap_abandoned(_owner_pid(p, target))]
    if not backups:
        return None
    newest = max(backups, key=lambda p: p.lstat().st_mtime_ns)
    os.replace(newest, target)
    logger.warning(
        "%s was missing: a save was interrupted between the two renames of its swap; restored the previous "
        "version from %s",
        target,
        newest.name,
    )
    return newest


def sweep_stale_temporaries(target: Path) -> list[Path]:
    """Delete the temporaries of ``target`` whose writing process is gone; returns what was removed.

    An interrupted swap's backup is restored first (:func:`restore_interrupted_swap`): it may be the
    only copy of the output left."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    restore_interrupted_swap(target)
    removed = []
    for path in target.parent.glob(f".{target.name}.*"):
        pid = _owner_pid(path, target)
        if pid is None or (pid > 0 and _pid_alive(pid)):
            continue
        _remove(path)
        removed.append(path)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted save of %s", len(removed), target)
    return removed


def temporary_sibling(target: Path, kind: str = "tmp") -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def replace_path(tmp: Path, target: Path) -> None:
    """Put the finished ``tmp`` (a file or a folder) where ``target`` is, whatever ``target`` was.

    A file over a file (or over nothing) is one ``os.replace``. Anything involving a folder — a folder
    over a folder, and a file where a folder was or the other way round (Spark writes a table as a
    folder of part files, DuckDB as one file, so switching engines in one project swaps the kinds) — is
    swapped through a backup: ``os.replace`` alone refuses a file over a folder (``IsADirectoryError``)
    and a folder over a file (``NotADirectoryError``). The old output stays until the new one is in
    place and is put back if that fails."""
    had_target = target.exists() or target.is_symlink()
    if not had_target or not (tmp.is_dir() or target.is_dir()):
        os.replace(tmp, target)
        return
    backup = temporary_sibling(target, "old")
    os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(backup, target)
        raise
    _remove(backup)


def write_error(target: Path, exc: BaseException) -> ArtifactWriteError:
    """The error to raise when writing ``target`` failed with ``exc``: names the file and a full disk."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    full = code == errno.ENOSPC or "No space left" in text or "file write failed" in text
    hint = " — the disk is full; free space and rerun" if full else ""
    return ArtifactWriteError(
        code or errno.EIO, f"cannot write {target}: {text}{hint} (the previous version, if any, is unchanged)"
    )


def _io_cause(exc: BaseException) -> BaseException | None:
    """The I/O failure behind ``exc``: itself or a cause/context (a dataset wraps it in its own error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, RuntimeError)):
            return current
        current = current.__cause__ or current.__context__
    return None


def atomic_write(target: Path | str, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` on a temporary sibling, then rename it over ``target``.

    ``write`` may create a file or a folder at ``tmp``. Stale temporaries of the same target are swept
    first; an ``OSError``/``RuntimeError`` (torch reports a full disk as the latter), also when a
    dataset wraps it in its own error, becomes :class:`ArtifactWriteError` naming ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(target)
    tmp = temporary_sibling(target)
    try:
        write(tmp)
        replace_path(tmp, target)
    except ArtifactWriteError:
        raise
    except Exception as exc:
        cause = _io_cause(exc)
        if cause is None:
            raise
        raise write_error(target, cause) from exc
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
    return target
