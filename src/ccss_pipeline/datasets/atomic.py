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



class ParquetChunksDataset(AbstractDataset[Any, Any]):
    """A parquet file written from a frame or from an iterable of frames (chunks), atomically.

    The chunks are consumed one at a time into a temporary file (memory: one chunk) that replaces the
    target only when the last chunk is written; a failure on any chunk leaves the previous file. Every
    chunk is cast to the first chunk's schema. Loads as one frame.
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self._filepath)

    def save(self, data: Any) -> None:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        chunks = [data] if isinstance(data, pd.DataFrame) else data

        def write(tmp: Path) -> None:
            writer, schema = None, None
            try:
                for chunk in chunks:
                    table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(tmp, schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise ValueError(f"{self._filepath}: nothing to write (no chunk)")

        atomic_write(self._filepath, write)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
