"""The project folder as a catalog input, so nodes resolve parameter paths against the project.

Kedro makes catalog ``path`` entries absolute against the project; parameters are plain strings. The
Optuna database and the training checkpoints are named in parameters (relative to the project), and a
node resolves them against this folder — not the working directory, which differs in notebooks and
in-process sessions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class ProjectFolderDataset(AbstractDataset[None, Path]):
    """Loads as the absolute path of ``path`` (``.`` = the project folder); read-only."""

    def __init__(self, path: str = ".", metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Path:
        return self._path.resolve()

    def save(self, data: Any) -> None:
        raise DatasetError("ProjectFolderDataset is read-only")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class PngFolderDataset(AbstractDataset[None, dict[str, bytes]]):
    """Loads the PNG files of a folder another dataset wrote (e.g. the Optuna plots) as
    ``{file name: bytes}``, so a report can embed them; read-only, empty when the folder is absent."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, bytes]:
        if not self._path.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(self._path.glob("*.png")) if not p.name.startswith(".")}

    def save(self, data: Any) -> None:
        raise DatasetError("PngFolderDataset is read-only: the folder is written by another dataset")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
