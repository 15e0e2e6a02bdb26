"""The project's lineage as a read-only catalog input: git commit, dirty tree, dvc.lock, environment.

A node that writes a model card must stay pure, so it never runs git or reads ``dvc.lock`` itself:
:class:`ProjectLineageDataset` does it when Kedro loads the entry. Everything degrades gracefully: a
copy of the project that is not a git repository (or a machine without git) gives the commit
``"unknown"`` and the dirty flag ``None``; a missing or unreadable ``dvc.lock`` gives ``None``.

It also reads the current bytes of the tracked artifacts (``artifacts``, paths relative to the
project) so the card can say whether each file still matches the md5 that ``dvc.lock`` records: a file
gets the md5 of its bytes (what DVC 3 records for a file); a folder is only marked as a folder (DVC's
folder hash is not re-implemented: compare with ``dvc status``).
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
#: Artifacts whose dvc.lock md5 a model card reports (paths relative to the project).
DEFAULT_ARTIFACTS = (
    "data/05_model_input/train.parquet",
    "data/05_model_input/validation.parquet",
    "data/05_model_input/test.parquet",
    "data/04_feature/feature_spec.json",
    "data/06_models/trained",
    "data/06_models/best_params.json",
)
#: At most this many uncommitted paths are listed (the flag itself counts them all).
MAX_DIRTY_PATHS = 20
_GIT_TIMEOUT_S = 30


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    """md5 of a file's bytes, as DVC 3 records a file output in ``dvc.lock``."""
    digest = hashlib.md5()  # noqa: S324 - a content address, as DVC uses it, not a security hash
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of ``git <args>`` in ``cwd``; None when git is missing, ``cwd`` is not a repository or git fails."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S,
                              check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:  # no git executable, no such folder, a hung git
        logger.debug("git %s failed in %s: %s", " ".join(args), cwd, exc)
        return None
    if proc.returncode != 0:
        logger.debug("git %s in %s: %s", " ".join(args), cwd, proc.stderr.strip())
        return None
    return proc.stdout


def git_state(root: Path) -> dict[str, Any]:
    """``{"git_commit", "git_dirty", "git_dirty_paths"}`` of the repository at ``root``: the commit
    (``"unknown"`` without git or a repository), whether tracked or untracked-but-not-ignored files differ
    from it (``None`` when unknown) and the first :data:`MAX_DIRTY_PATHS` such paths."""
    head = _git(["rev-parse", "HEAD"], root)
    commit = head.strip() if head and head.strip() else UNKNOWN
    status = _git(["status", "--porcelain"], root) if commit != UNKNOWN else None
    if status is None:
        return {"git_commit": commit, "git_dirty": None, "git_dirty_paths": []}
    paths = [line[3:].strip() for line in status.splitlines() if line.strip()]
    return {"git_commit": commit, "git_dirty": bool(paths), "git_dirty_paths": paths[:MAX_DIRTY_PATHS]}


def read_dvc_lock(root: Path) -> dict[str, Any] | None:
    """``dvc.lock`` at ``root`` parsed, or None when it is absent or not a YAML mapping."""
    path = root / "dvc.lock"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        logger.warning("dvc.lock at %s cannot be read (%s); the model card shows no DVC hashes", path, exc)
        return None
    return data if isinstance(data, dict) else None


def current_artifacts(root: Path, paths: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``path -> {"kind": "file" | "folder" | "missing", "md5": md5 of a file's bytes or None}``."""
    out: dict[str, dict[str, Any]] = {}
    for rel in paths:
        path = root / rel
        if path.is_file():
            out[rel] = {"kind": "file", "md5": file_md5(path)}
        elif path.is_dir():
            out[rel] = {"kind": "folder", "md5": None}
        else:
            out[rel] = {"kind": "missing", "md5": None}
    return out


class ProjectLineageDataset(AbstractDataset[None, dict[str, Any]]):
    """Loads ``{"git_commit", "git_dirty", "git_dirty_paths", "dvc_lock", "env", "artifacts"}`` of the
    project at ``path`` (``.`` = the project folder; Kedro makes it absolute); read-only.

    ``env`` is the Kedro environment the entry belongs to (each environment's catalog names its own);
    ``artifacts`` lists the files and folders (relative to ``path``) whose current md5 is read.
    """

    def __init__(self, path: str = ".", env: str = "base", artifacts: list[str] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:  # fmt: skip
        self._path = Path(path)
        self._env = str(env)
        self._artifacts = tuple(artifacts) if artifacts is not None else DEFAULT_ARTIFACTS
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        root = self._path.resolve()
        return {
            **git_state(root),
            "dvc_lock": read_dvc_lock(root),
            "env": self._env,
            "artifacts": current_artifacts(root, self._artifacts),
        }

    def save(self, data: Any) -> None:
        raise DatasetError("ProjectLineageDataset is read-only: it reads git, dvc.lock and the artifacts")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "env": self._env, "artifacts": list(self._artifacts)}
