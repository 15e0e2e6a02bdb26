"""Parquet tables written and read by the data engine (DuckDB or Spark), atomically.

The data stages hand each other Ibis table expressions; saving one runs it on its engine straight
into parquet (DuckDB: one file written as it streams, ``COPY ... TO``; Spark: a folder of part files,
one per partition), and loading one is a lazy scan on the configured engine (``load_as: table``) or,
for the stages that hold tables in memory, a frame (``load_as: pandas``). Saves go through a
temporary sibling renamed over the target (:func:`ccss_pipeline.files.atomic_write`), so a failed or
killed stage leaves the previous table.

Lineage attrs (the feature-spec fingerprint of model-ready tables) travel as pandas' own
``PANDAS_ATTRS`` parquet metadata (DuckDB writes it with the file), or a ``_ccss_attrs.json`` inside a
Spark folder, and come back in ``DataFrame.attrs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from ccss_pipeline.data.relational.backends import backend_name, connect
from ccss_pipeline.files import atomic_write
from ccss_pipeline.lineage import StampedTable

#: pandas restores ``DataFrame.attrs`` from this parquet key-value entry.
PANDAS_ATTRS = "PANDAS_ATTRS"
#: A Spark folder's attrs (Spark writes no custom parquet metadata); pyarrow skips ``_`` files.
ATTRS_FILE = "_ccss_attrs.json"


class EngineTableDataset(AbstractDataset[Any, Any]):
    """A parquet table of the data stages (``engine``: the engine configuration, see
    :func:`ccss_pipeline.data.relational.backends.connect`)."""

    def __init__(self, filepath: str, engine: dict[str, Any] | None = None, load_as: str = "table",
                 metadata: dict[str, Any] | None = None) -> None:
        if load_as not in ("table", "pandas"):
            raise ValueError(f"EngineTableDataset load_as must be 'table' or 'pandas', not {load_as!r}")
        self._filepath = Path(filepath)
        self._engine = dict(engine or {"backend": "duckdb"})
        self._load_as = load_as
        self.metadata = metadata

    # ------------------------------------------------------------------------------------- load
    def load(self) -> Any:
        if self._load_as == "pandas":
            return self._load_frame()
        con = connect(self._engine)
        path = self._filepath
        if path.is_dir() and self._engine.get("backend", "duckdb") == "duckdb":
            return con.read_parquet(str(path / "*.parquet"))
        return con.read_parquet(str(path))

    def _load_frame(self) -> Any:
        import pandas as pd

        frame = pd.read_parquet(self._filepath)
        sidecar = self._filepath / ATTRS_FILE
        if self._filepath.is_dir() and sidecar.exists():
            frame.attrs.update(json.loads(sidecar.read_text()))
        return frame

    # ------------------------------------------------------------------------------------- save
    def save(self, data: Any) -> None:
        attrs: dict[str, Any] = {}
        if isinstance(data, StampedTable):
            data, attrs = data.table, dict(data.attrs)
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            atomic_write(self._filepath, lambda tmp: data.to_parquet(tmp, index=False))
            return
        atomic_write(self._filepath, lambda tmp: _write_table(data, tmp, attrs))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "engine": self._engine, "load_as": self._load_as}


def _write_table(table: Any, path: Path, attrs: dict[str, Any]) -> None:
    """Run ``table`` on its engine into parquet at ``path`` (a file on DuckDB, a folder on Spark)."""
    import ibis

    con = ibis.get_backend(table)
    if backend_name(table) == "duckdb":
        options = {"kv_metadata": {PANDAS_ATTRS: json.dumps(attrs)}} if attrs else {}
        con.to_parquet(table, str(path), **options)
        return
    con.to_parquet(table, str(path))
    if attrs:
        (path / ATTRS_FILE).write_text(json.dumps(attrs))
