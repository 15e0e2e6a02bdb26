"""A parquet table known by its footer and read only when asked (issue 14: tables larger than memory).

Kedro loads a dataset before its node runs. A model-ready table of 10^8 rows must not be read whole
just to be handed to a node that then streams it, so the catalog hands nodes a :class:`ParquetTable`:
its path, row count and lineage attrs come from the parquet footers; the rows come as a frame
(:meth:`ParquetTable.frame`, for what fits in memory), a column or two, or a row group at a time.
A table is a file (DuckDB, pandas) or a folder of part files (Spark). A file that cannot be read
(truncated, overwritten) raises :class:`UnreadableTableError`, which names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

#: pandas restores ``DataFrame.attrs`` from this parquet key-value entry.
PANDAS_ATTRS = "PANDAS_ATTRS"
#: A Spark folder's attrs (Spark writes no custom parquet metadata); pyarrow skips ``_`` files.
ATTRS_FILE = "_ccss_attrs.json"


class UnreadableTableError(ValueError):
    """A parquet file exists but cannot be read (truncated by a kill or a full disk, or overwritten).

    pyarrow says only "Parquet magic bytes not found in footer", naming no file; this names it and the
    way back. ``path``: the file; ``reason``: pyarrow's own words.
    """

    path: Path
    reason: str


def unreadable(path: Path, reason: str, rebuild: str | None = None) -> UnreadableTableError:
    """The error for the unreadable ``path``; ``rebuild``: the pipeline that writes it, when known."""
    how = f"`kedro run --pipelines={rebuild}`" if rebuild else "the stage that writes it"
    error = UnreadableTableError(
        f"{path}: unreadable parquet file, truncated or corrupt ({reason}); it is not used. Rerun {how} "
        "(or `dvc repro`) to write it again"
    )
    error.path, error.reason = path, reason
    return error


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn pyarrow's error for an unreadable ``path`` into :class:`UnreadableTableError` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        raise unreadable(path, reason) from exc


@dataclass(frozen=True)
class ParquetTable:
    """A parquet file or folder of part files; nothing but footers is read until asked."""

    path: Path
    _files: tuple[Path, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        path = Path(self.path)
        object.__setattr__(self, "path", path)
        if path.is_dir():
            files = tuple(sorted(p for p in path.rglob("*.parquet") if not p.name.startswith(("_", "."))))
        elif path.exists():
            files = (path,)
        else:
            raise FileNotFoundError(f"{path}: no such parquet table")
        object.__setattr__(self, "_files", files)

    @property
    def files(self) -> tuple[Path, ...]:
        return self._files

    @cached_property
    def row_groups(self) -> tuple[tuple[int, int, int], ...]:
        """(file index, row group index, rows) of every row group, in file order."""
        out: list[tuple[int, int, int]] = []
        for i, f in enumerate(self._files):
            with _reading(f):
                meta = pq.ParquetFile(f).metadata
            out.extend((i, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups))
        return tuple(out)

    @property
    def num_rows(self) -> int:
        return int(sum(rows for _, _, rows in self.row_groups))

    def __len__(self) -> int:
        return self.num_rows

    @cached_property
    def attrs(self) -> dict[str, Any]:
        """The lineage attrs a frame of this table would carry in ``DataFrame.attrs``."""
        sidecar = self.path / ATTRS_FILE
        if self.path.is_dir() and sidecar.exists():
            return dict(json.loads(sidecar.read_text()))
        if not self._files:
            return {}
        with _reading(self._files[0]):
            meta = pq.read_schema(self._files[0]).metadata or {}
        raw = meta.get(PANDAS_ATTRS.encode())
        return dict(json.loads(raw)) if raw else {}

    @cached_property
    def columns(self) -> list[str]:
        if not self._files:
            return []
        with _reading(self._files[0]):
            return list(pq.read_schema(self._files[0]).names)

    def frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole table (or ``columns`` of it) in memory, with its attrs."""
        with _reading(self.path):
            frame = pd.read_parquet(self.path, columns=list(columns) if columns is not None else None)
        frame.attrs.update(self.attrs)
        return frame

    def __getitem__(self, column: str) -> pd.Series:
        """One column in memory, as a frame's ``frame[column]`` is: a caller that reads one column of a split
        takes the lazy table or a loaded frame alike, and only that column of the file is read."""
        return self.frame([column])[column]

    def read_row_group(self, index: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Row group ``index`` (counted over all files, as in :attr:`row_groups`) as a frame."""
        file, group, _ = self.row_groups[index]
        with _reading(self._files[file]):
            return (
                pq.ParquetFile(self._files[file])
                .read_row_group(group, columns=list(columns) if columns is not None else None)
                .to_pandas()
            )

    def iter_frames(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Every row group in order, one frame at a time (memory: one row group)."""
        for i in range(len(self.row_groups)):
            yield self.read_row_group(i, columns)
