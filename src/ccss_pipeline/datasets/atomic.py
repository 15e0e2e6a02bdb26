"""Atomic saves for any file-based Kedro dataset: write to a temporary sibling, then rename.

A run killed or failing mid-save therefore never leaves a half-written parquet, JSON or model file
where a later node or a rerun would read it: the old file stays until the new one is complete.

Outputs tracked in git (``metrics.json`` and the plot tables DVC draws) are saved with
``significant_digits: 10`` (:func:`round_significant`): the same run on another machine differs in the
last bits of a float (BLAS, thread counts), which would otherwise show as a changed file in every diff;
ten digits are far beyond what any figure means. Every other output keeps full precision.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.io import AbstractDataset
from kedro.io.core import parse_dataset_definition

from ccss_pipeline.files import atomic_write
from ccss_pipeline.parquet_table import PANDAS_ATTRS

if TYPE_CHECKING:
    import pandas as pd


def _round_float(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value


def round_frame(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    """A copy of ``frame`` with every float column rounded to ``digits`` significant digits (its dtype kept).

    Rounded through the shortest decimal (``format(v, ".10g")``), so two values that differ only in the
    last bits — the same figure computed on two machines — are written as the same bytes."""
    import numpy as np
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_float_dtype(values.dtype):
            rounded = [_round_float(float(v), digits) for v in values.to_numpy(dtype=np.float64)]
            out[column] = pd.Series(rounded, index=out.index, dtype=np.float64).astype(values.dtype)
    return out


def round_significant(data: Any, digits: int) -> Any:
    """``data`` with every float rounded to ``digits`` significant digits, as :func:`round_frame` does: the
    floats of a JSON-like dict or list, or a float; anything else unchanged."""
    import numpy as np

    if isinstance(data, Mapping):
        return {k: round_significant(v, digits) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [round_significant(v, digits) for v in data]
    if isinstance(data, (float, np.floating)):
        return _round_float(float(data), digits)
    return data


class AtomicDataset(AbstractDataset[Any, Any]):
    """Wrap a local file dataset (``dataset: {type: ..., filepath: ...}``) so that saves are atomic;
    ``significant_digits``: round every float to that many digits before saving (tracked outputs): the
    float columns of a frame where the wrapped dataset is a pandas one (:func:`round_frame`), else the
    floats of JSON-like data (:func:`round_significant`)."""

    def __init__(
        self,
        dataset: dict[str, Any] | str,
        filepath: str | None = None,
        metadata: dict[str, Any] | None = None,
        significant_digits: int | None = None,
    ):
        config = {"type": dataset} if isinstance(dataset, str) else deepcopy(dataset)
        if filepath is not None:
            config["filepath"] = filepath
        if "filepath" not in config:
            raise ValueError("AtomicDataset needs a 'filepath' (on itself or on the wrapped dataset)")
        self._config = config
        self._filepath = Path(config["filepath"])
        self._inner = self._build(self._filepath)
        self.metadata = metadata
        if significant_digits is not None and not 1 <= significant_digits <= 17:
            raise ValueError(f"AtomicDataset significant_digits must be in 1..17, not {significant_digits!r}")
        self._digits = significant_digits
        saves_frames = "pandas" in type(self._inner).__module__.split(".")  # kedro_datasets.pandas.*
        self._round: Callable[[Any, int], Any] = round_frame if saves_frames else round_significant

    def _build(self, path: Path) -> AbstractDataset:
        config = dict(self._config, filepath=str(path))
        cls, kwargs = parse_dataset_definition(config)
        return cls(**kwargs)

    def load(self) -> Any:
        return self._inner.load()

    def save(self, data: Any) -> None:
        if self._digits is not None:
            data = self._round(data, self._digits)
        atomic_write(self._filepath, lambda tmp: self._build(tmp).save(data))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "dataset": self._config.get("type"),
            "significant_digits": self._digits,
        }


class ParquetChunksDataset(AbstractDataset[Any, Any]):
    """A parquet file written from an iterable of frames (chunks), atomically: its writers (the pair
    draw, the scoring) produce chunks, so a table of any size is written in bounded memory.

    The chunks are consumed one at a time into a temporary file (memory: one chunk) that replaces the
    target only when the last chunk is written; a failure on any chunk leaves the previous file. Every
    chunk is cast to the first chunk's schema; the first chunk's ``attrs`` (lineage) are kept as pandas
    keeps them. Loads as one frame (``load_as: pandas``) or, for a table that may not fit in memory,
    as a :class:`ccss_pipeline.parquet_table.ParquetTable` (``load_as: lazy``: footers only).
    """

    def __init__(self, filepath: str, load_as: str = "pandas", metadata: dict[str, Any] | None = None) -> None:
        if load_as not in ("pandas", "lazy"):
            raise ValueError(f"ParquetChunksDataset load_as must be 'pandas' or 'lazy', not {load_as!r}")
        self._filepath = Path(filepath)
        self._load_as = load_as
        self.metadata = metadata

    def load(self) -> Any:
        from ccss_pipeline.parquet_table import ParquetTable

        table = ParquetTable(self._filepath)
        return table if self._load_as == "lazy" else table.frame()

    def save(self, chunks: Iterable[pd.DataFrame]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def write(tmp: Path) -> None:
            writer, schema = None, None
            try:
                for chunk in chunks:
                    table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
                    if writer is None:
                        schema = table.schema
                        if chunk.attrs:  # where pandas' own to_parquet keeps them
                            schema = schema.with_metadata(
                                {**(schema.metadata or {}), PANDAS_ATTRS.encode(): json.dumps(chunk.attrs).encode()}
                            )
                            table = table.replace_schema_metadata(schema.metadata)
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
        return {"filepath": str(self._filepath), "load_as": self._load_as}
