"""Atomic saves for any file-based Kedro dataset: write to a temporary sibling, then rename.

A run killed or failing mid-save therefore never leaves a half-written parquet, JSON or model file
where a later node or a rerun would read it: the old file stays until the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from copy import deepcopy
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import parse_dataset_definition


class AtomicDataset(AbstractDataset[Any, Any]):
    """Wrap a local file dataset (``dataset: {type: ..., filepath: ...}``) so that saves are atomic."""

    def __init__(self, dataset: dict[str, Any] | str, filepath: str | None = None, metadata: dict[str, Any] | None = None):
        config = {"type": dataset} if isinstance(dataset, str) else deepcopy(dataset)
        if filepath is not None:
            config["filepath"] = filepath
        if "filepath" not in config:
            raise ValueError("AtomicDataset needs a 'filepath' (on itself or on the wrapped dataset)")
        self._config = config
        self._filepath = Path(config["filepath"])
        self._inner = self._build(self._filepath)
        self.metadata = metadata

    def _build(self, path: Path) -> AbstractDataset:
        config = dict(self._config, filepath=str(path))
        cls, kwargs = parse_dataset_definition(config)
        return cls(**kwargs)

    def load(self) -> Any:
        return self._inner.load()

    def save(self, data: Any) -> None:
        target = self._filepath
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            self._build(tmp).save(data)
            _replace(tmp, target)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dataset": self._config.get("type")}


def _replace(tmp: Path, target: Path) -> None:
    """``os.replace`` for files; for folders, swap through a backup so the old one survives a failure."""
    if tmp.is_dir() and target.is_dir():
        backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, backup)
        try:
            os.replace(tmp, target)
        except OSError:
            os.replace(backup, target)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, target)
