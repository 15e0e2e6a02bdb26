"""Read-only Kedro datasets for the three raw sources; all return a source bundle (dict of tables)."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from ccss_pipeline.data import sources
from ccss_pipeline.data.synthetic import SyntheticConfig


class _ReadOnlySource(AbstractDataset[None, dict[str, pd.DataFrame]]):
    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is a raw source and read-only")

    @abstractmethod
    def _read(self) -> dict[str, pd.DataFrame]:
        """The source bundle; a :class:`SourceError` becomes Kedro's ``DatasetError``."""

    def load(self) -> dict[str, pd.DataFrame]:
        try:
            return self._read()
        except sources.SourceError as exc:
            raise DatasetError(str(exc)) from exc


class SyntheticSourceDataset(_ReadOnlySource):
    """The embedded default data: a seeded KuaiRand-shaped log generated on load (deterministic)."""

    def __init__(self, metadata: dict[str, Any] | None = None, **generator: Any) -> None:
        self._config = SyntheticConfig(**generator)
        self.metadata = metadata

    def _read(self) -> dict[str, pd.DataFrame]:
        return sources.synthetic_bundle(self._config)

    def _describe(self) -> dict[str, Any]:
        return {"generator": vars(self._config)}

    def _exists(self) -> bool:
        return True


class KuaiRandSourceDataset(_ReadOnlySource):
    """The official KuaiRand file layout in one folder (logs, user table, video tables if present)."""

    def __init__(
        self,
        path: str,
        log_patterns: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = Path(path)
        self._log_patterns = tuple(log_patterns or ("log_standard_*.csv", "log_*.tsv"))
        self.metadata = metadata

    def _read(self) -> dict[str, pd.DataFrame]:
        return sources.read_kuairand(self._path, log_patterns=self._log_patterns)

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "log_patterns": list(self._log_patterns)}

    def _exists(self) -> bool:
        return self._path.is_dir()


class TableSourceDataset(_ReadOnlySource):
    """A user's own CSV/TSV/parquet log, with optional side tables (name -> file).

    A table published with its own split may come as one file per split instead of ``filepath``:
    ``split_files: {train: ..., validation: ..., test: ...}`` (validation optional; same columns in
    each) are concatenated with a column ``split`` naming each row's split — then set
    ``schema.split_column: split`` and ``feature_engineering.split.mode: column``.

    ``chunk_rows`` (rows to score, larger than memory): the load is a :class:`ChunkedSource` whose log is
    read that many rows at a time; the side tables are read whole.
    """

    def __init__(
        self,
        filepath: str | None = None,
        side_tables: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        split_files: dict[str, str] | None = None,
        chunk_rows: int | None = None,
    ) -> None:
        if chunk_rows is not None and (chunk_rows < 1 or split_files):
            raise DatasetError("TableSourceDataset: chunk_rows must be >= 1 and works with filepath only")
        self._chunk_rows = chunk_rows
        if (filepath is None) == (not split_files):
            raise DatasetError(
                "TableSourceDataset needs either filepath (one log file) or split_files "
                "(one file per split: train, validation (optional), test), "
                f"not {'both' if filepath is not None else 'neither'}"
            )
        self._filepath = Path(filepath) if filepath is not None else None
        self._split_files = {name: Path(path) for name, path in (split_files or {}).items() if path}
        self._side_tables = dict(side_tables or {})
        self.metadata = metadata

    def _read(self) -> dict[str, pd.DataFrame] | sources.ChunkedSource:  # type: ignore[override]
        if self._chunk_rows is not None and self._filepath is not None:
            return sources.read_own_table_in_chunks(self._filepath, self._chunk_rows, self._side_tables)
        return sources.read_own_table(self._filepath, self._side_tables, split_files=self._split_files or None)

    def _describe(self) -> dict[str, Any]:
        if self._filepath is None:
            return {"split_files": {k: str(v) for k, v in self._split_files.items()}, "side_tables": self._side_tables}
        return {"filepath": str(self._filepath), "side_tables": self._side_tables}

    def _exists(self) -> bool:
        if self._filepath is None:
            return all(path.is_file() for path in self._split_files.values())
        return self._filepath.is_file()


class EngineSourceDataset(_ReadOnlySource):
    """Raw tables read by the data engine, never whole into Python memory (logs larger than memory).

    ``tables``: table name (``log``, the schema's side tables, optionally ``directions``) -> a parquet
    file, a folder of parquet files, a glob, or CSV/TSV file(s). ``engine``: as the engine tables'
    (``${globals:data_engine}``). The load is an :class:`~ccss_pipeline.data.sources.EngineSource`; the
    gate validates it a batch at a time and the join runs on the engine.
    """

    def __init__(
        self, tables: dict[str, str], engine: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        if "log" not in tables:
            raise DatasetError(f"EngineSourceDataset needs a 'log' table, got {sorted(tables)}")
        self._tables = dict(tables)
        self._engine = dict(engine or {"backend": "duckdb"})
        self.metadata = metadata

    def _read(self) -> sources.EngineSource:
        from ccss_pipeline.data.relational.backends import connect

        return sources.read_engine_source(self._tables, connect(self._engine))

    def _describe(self) -> dict[str, Any]:
        return {"tables": self._tables, "engine": self._engine}

    def _exists(self) -> bool:
        import glob

        return bool(glob.glob(self._tables["log"]))
