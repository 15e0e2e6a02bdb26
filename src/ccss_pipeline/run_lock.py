"""One ``kedro run`` at a time per project: an exclusive lock on ``data/.kedro-run.lock``.

The outputs under ``data/`` (the model-ready tables, the pair table, the Optuna study of this project,
the trained models, the report) each have a single writer. Two runs at once would interleave their
writes and one would treat the other's live search trial as dead, so a second run is refused with a
message naming the run that holds the lock. The lock is an OS advisory lock (``flock``), released by
the kernel when its process ends, so a killed run never leaves a stale lock behind.

Search workers (``kedro run --pipelines=search``) share the lock with each other: N of them split one
Optuna study's trials (a live worker's trial is never taken for dead) and each writes the same
chosen parameters, atomically; any other run still excludes them and they exclude it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

LOCK_NAME = ".kedro-run.lock"
#: the registered pipeline whose runs share the lock (the search stage alone)
SEARCH_PIPELINE = "search"

try:  # POSIX; on Windows the lock is skipped (with a debug message)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class ProjectBusyError(RuntimeError):
    """Another run holds this project's lock; the message says which, and that nothing was run."""


class ProjectLock:
    """Hold the project's run lock from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, project_path: Path | str) -> None:
        self.path = Path(project_path) / "data" / LOCK_NAME
        self._handle: IO[str] | None = None
        self._shared = False

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, description: dict[str, Any] | None = None, shared: bool = False) -> None:
        """Take the lock without waiting; raise :class:`ProjectBusyError` if another run holds it.

        ``shared``: several holders at once (search workers); an exclusive holder excludes them all.
        """
        if fcntl is None or self._handle is not None:
            logger.debug("project run lock not available on this platform or already held")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "{}"
            handle.close()
            raise ProjectBusyError(_busy_message(self.path, holder)) from None
        handle.seek(0)
        if not shared or not handle.read().strip():  # shared holders keep the first one's description
            handle.seek(0)
            handle.truncate()
            handle.write(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "command": " ".join(sys.argv[:6]),
                        **(description or {}),
                    }
                )
            )
            handle.flush()
        self._handle = handle
        self._shared = shared

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            if not self._shared:  # another search worker may still hold a shared lock
                self._handle.seek(0)
                self._handle.truncate()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        finally:
            self._handle.close()
            self._handle = None


def _busy_message(path: Path, holder: str) -> str:
    try:
        info = json.loads(holder)
    except json.JSONDecodeError:
        info = {}
    who = ", ".join(f"{k} {info[k]}" for k in ("pid", "host", "started", "pipelines", "command") if info.get(k))
    return (
        f"another kedro run is using this project ({who or 'details unknown'}; lock {path}). Its outputs "
        "under data/ have one writer at a time, so nothing was run: wait for it to finish, or run from a "
        "separate copy of the project"
    )
