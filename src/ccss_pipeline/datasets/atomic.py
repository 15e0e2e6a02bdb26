"""Atomic saves for any file-based Kedro dataset: write to a temporary sibling, then rename.

A run killed or failing mid-save therefore never leaves a half-written parquet, JSON or model file
where a later node or a rerun would read it: the old file stays until the new one is complete.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import parse_dataset_definition

from ccss_pipeline.files import atomic_write


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
        atomic_write(self._filepath, lambda tmp: self._build(tmp).save(data))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dataset": self._config.get("type")}

