"""Long commands a test only reads the result of (mypy over the package, the shared DVC project's first
``dvc repro``): started as soon as the session knows it will run a test that needs one
(``pytest_collection_finish`` in tests/conftest.py), they run beside the other tests, on the core those
leave idle; the test then waits for the result. A test run alone starts its command itself, so the
commands, and what the tests assert on their results, are the same either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
#: mypy as configured in pyproject.toml, from scratch (no cache from an earlier run can hide an error)
MYPY = (sys.executable, "-m", "mypy", "--no-incremental")

_running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]] = {}


def start(name: str, cmd: Sequence[str], cwd: Path = ROOT, env: Mapping[str, str] | None = None) -> None:
    """Start ``cmd`` (once per ``name``) in a process group of its own; its output goes to temporary
    files, never to a pipe nobody reads."""
    if name in _running:
        return
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=None if env is None else dict(env), stdout=out, stderr=err, start_new_session=True
    )
    _running[name] = (proc, out, err)


def result(
    name: str,
    cmd: Sequence[str],
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> subprocess.CompletedProcess[str]:
    """The finished run of ``cmd`` started under ``name`` (started now if it was not), as
    :func:`subprocess.run` with ``capture_output=True, text=True`` returns it; killed after ``timeout``
    seconds of waiting (:class:`subprocess.TimeoutExpired`)."""
    start(name, cmd, cwd, env)
    proc, out, err = _running.pop(name)
    try:
        proc.wait(timeout=timeout)
    finally:
        _end(proc)
    texts = []
    for handle in (out, err):
        handle.seek(0)
        texts.append(handle.read().decode(errors="replace"))
        handle.close()
    return subprocess.CompletedProcess(list(cmd), proc.returncode, texts[0], texts[1])


def stop_all() -> None:
    """End what was started and never asked for (a run stopped early by ``-x``, a test skipped)."""
    for name in list(_running):
        proc, out, err = _running.pop(name)
        _end(proc)
        out.close()
        err.close()


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and its children (``dvc`` runs ``kedro``) if it is still running."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
