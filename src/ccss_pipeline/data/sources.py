"""Readers of the three raw sources, each returning the same bundle of tables.

A *source bundle* is a dict of DataFrames: ``log`` (one row per impression, required) and optional side
tables (``users``, ``videos``) that the schema joins by key. Each frame carries the file(s) it came from
in ``frame.attrs["origin"]`` so every validation message can name the file.
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd

from ccss_pipeline.data import synthetic
from ccss_pipeline.spec import SPLIT_COLUMN

ORIGIN = "origin"


class SourceError(ValueError):
    """A raw file cannot be read as the layout it claims to be; the message names the file."""


def with_origin(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    frame.attrs[ORIGIN] = origin
    return frame


def origin_of(frame: pd.DataFrame, default: str) -> str:
    return str(frame.attrs.get(ORIGIN, default))


def _sniff_separator(path: Path) -> str:
    """Tab for .tsv files, otherwise what the first line says (comma, tab or semicolon)."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        head = fh.readline()
    try:
        return csv.Sniffer().sniff(head, delimiters=",\t;").delimiter
    except csv.Error:
        return ","


def read_table(path: str | Path, sep: str | None = None) -> pd.DataFrame:
    """Read one CSV/TSV/parquet file strictly: bad bytes, truncation, emptiness or a header repeating a
    column name fail naming the file."""
    path = Path(path)
    _check_file(path)
    with _parse_errors(path):
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = cast(pd.DataFrame, pd.read_csv(path, **_csv_options(path, sep)))
    if path.suffix.lower() != ".parquet":
        _check_field_counts(path, sep or _sniff_separator(path))
        _check_columns(path, frame)
    return with_origin(frame, str(path))


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise SourceError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes)")


def _csv_options(path: Path, sep: str | None) -> dict[str, Any]:
    """Strict CSV/TSV reading: UTF-8 only, a malformed line is an error, types from the whole file."""
    return {
        "sep": sep or _sniff_separator(path),
        "encoding": "utf-8",
        "encoding_errors": "strict",
        "on_bad_lines": "error",
        "low_memory": False,
    }


@contextmanager
def _parse_errors(path: Path) -> Iterator[None]:
    """pandas/pyarrow reading errors as :class:`SourceError` naming the file."""
    try:
        yield
    except SourceError:
        raise
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"{path}: no columns to parse (empty or header-only file)") from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise SourceError(f"{path}: cannot be parsed as a table: {exc}") from exc


def _check_columns(path: Path, frame: pd.DataFrame) -> None:
    if frame.shape[1] <= 1:
        raise SourceError(
            f"{path}: only one column ({list(frame.columns)!r}) was found — wrong delimiter? "
            "Expected comma- or tab-separated values with a header row"
        )


def iter_table(path: str | Path, chunk_rows: int, sep: str | None = None) -> Iterator[pd.DataFrame]:
    """:func:`read_table`'s strictness, at most ``chunk_rows`` rows at a time (memory: one chunk).

    CSV/TSV: the field counts and the header are checked by one streaming pass first, then pandas reads
    chunks; parquet: row batches of the file.
    """
    path = Path(path)
    _check_file(path)
    with _parse_errors(path):
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield with_origin(batch.to_pandas(), str(path))
            return
        sep = sep or _sniff_separator(path)
        _check_field_counts(path, sep)
        for number, chunk in enumerate(pd.read_csv(path, **_csv_options(path, sep), chunksize=chunk_rows)):
            if number == 0:
                _check_columns(path, chunk)
            yield with_origin(chunk, str(path))


@dataclass(frozen=True)
class ChunkedSource:
    """A log read a chunk at a time (:func:`iter_table`), its side tables (small) in memory."""

    log_path: Path
    chunk_rows: int
    side_tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def bundles(self) -> Iterator[dict[str, pd.DataFrame]]:
        """A source bundle per chunk of the log; every call reads the file again from the start."""
        for chunk in iter_table(self.log_path, self.chunk_rows):
            yield {"log": chunk, **self.side_tables}


def _chunked(source: dict[str, pd.DataFrame] | ChunkedSource) -> ChunkedSource | None:
    """The source as a :class:`ChunkedSource`, None for a bundle held in memory (the one place the two
    forms of a source to score are told apart)."""
    return source if isinstance(source, ChunkedSource) else None


def source_bundles(source: dict[str, pd.DataFrame] | ChunkedSource) -> Iterator[dict[str, pd.DataFrame]]:
    """The bundles of a source: one for an in-memory bundle, one per chunk for a :class:`ChunkedSource`."""
    chunked = _chunked(source)
    if chunked is not None:
        yield from chunked.bundles()
    else:
        yield cast(dict[str, pd.DataFrame], source)


def tables_in_memory(source: dict[str, pd.DataFrame] | ChunkedSource) -> dict[str, pd.DataFrame]:
    """What a source holds in memory: the whole bundle, or a chunked source's side tables (its log is
    read chunk by chunk)."""
    chunked = _chunked(source)
    return dict(chunked.side_tables) if chunked is not None else cast(dict[str, pd.DataFrame], source)


def _check_field_counts(path: Path, sep: str) -> None:
    """pandas pads short rows with NaN: a truncated last row or a mismatched delimiter must fail instead.

    pandas also renames a repeated header name to ``name.1``, so the second column would silently never be
    used: a header that repeats a name fails here too.
    """
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, [])
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            detail = ", ".join(f"{name!r} ({header.count(name)} times)" for name in repeated)
            raise SourceError(
                f"{path}: the header repeats column name(s) {detail}; every column needs its own name "
                "(pandas would rename the copies to 'name.1' and the data in them would be silently ignored)"
            )
        width = len(header)
        for number, row in enumerate(reader, start=2):
            if row and len(row) != width:
                raise SourceError(
                    f"{path}: line {number} has {len(row)} field(s), the header has {width} "
                    "(truncated file or wrong delimiter?)"
                )


def _read_many(paths: list[Path]) -> pd.DataFrame:
    frames = [read_table(p) for p in paths]
    columns = [tuple(f.columns) for f in frames]
    if len(set(columns)) > 1:
        detail = "; ".join(f"{p.name}: {len(c)} columns" for p, c in zip(paths, columns, strict=True))
        raise SourceError(f"log files disagree on their columns ({detail})")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return with_origin(frame, ", ".join(str(p) for p in paths))


def _glob(directory: Path, patterns: list[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        found.extend(Path(p) for p in sorted(glob.glob(str(directory / pattern))))
    return list(dict.fromkeys(found))


def read_kuairand(
    directory: str | Path,
    log_patterns: tuple[str, ...] = ("log_standard_*.csv", "log_*.tsv"),
    user_patterns: tuple[str, ...] = ("user_features_*.csv",),
    video_basic_patterns: tuple[str, ...] = ("video_features_basic_*.csv",),
    video_statistic_patterns: tuple[str, ...] = ("video_features_statistic_*.csv",),
) -> dict[str, pd.DataFrame]:
    """Read the official KuaiRand layout: any number of logs, the user table, the video tables if present."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SourceError(f"{directory}: KuaiRand data folder not found (put the KuaiRand 'data/' files there)")
    logs = _glob(directory, list(log_patterns))
    if not logs:
        raise SourceError(f"{directory}: no log file matches any of {list(log_patterns)}")
    bundle = {"log": _read_many(logs)}
    users = _glob(directory, list(user_patterns))
    if users:
        bundle["users"] = _read_many(users[:1])
    basic = _glob(directory, list(video_basic_patterns))
    stats = _glob(directory, list(video_statistic_patterns))
    if basic or stats:
        bundle["videos"] = _merge_video_tables(
            _read_many(basic[:1]) if basic else None, _read_many(stats[:1]) if stats else None
        )
    return bundle


def _merge_video_tables(basic: pd.DataFrame | None, stats: pd.DataFrame | None) -> pd.DataFrame:
    """One video table: basic features, plus statistics where present (stats win on shared names)."""
    if basic is None or stats is None:
        return basic if basic is not None else stats  # type: ignore[return-value]
    origin = f"{origin_of(basic, 'video basic')}, {origin_of(stats, 'video statistic')}"
    for name, table in (("basic", basic), ("statistic", stats)):
        if "video_id" not in table.columns:
            raise SourceError(f"{origin_of(table, name)}: video table lacks its key column 'video_id'")
    shared = [c for c in stats.columns if c in basic.columns and c != "video_id"]
    merged = basic.drop(columns=shared).merge(stats, on="video_id", how="outer")
    return with_origin(merged, origin)


#: The split names ``read_split_files`` accepts (train and test required) and the column it adds.
SPLIT_FILE_NAMES = ("train", "validation", "test")
SPLIT_FILE_COLUMN = SPLIT_COLUMN


def read_split_files(split_files: Mapping[str, str | Path], column: str = SPLIT_FILE_COLUMN) -> pd.DataFrame:
    """One log from a table published as one file per split (``{"train": ..., "validation": ..., "test": ...}``,
    validation optional): each file read strictly, all with the same columns, ``column`` holding each row's
    split name, concatenated train, validation, test. Use with ``schema.split_column: split`` and
    ``feature_engineering.split.mode: column``."""
    unknown = sorted(set(split_files) - set(SPLIT_FILE_NAMES))
    if unknown:
        raise SourceError(f"split_files: unknown split name(s) {unknown}; allowed: {list(SPLIT_FILE_NAMES)}")
    missing = [name for name in ("train", "test") if not split_files.get(name)]
    if missing:
        raise SourceError(
            f"split_files: the {' and '.join(missing)} file is required "
            f"(given: {sorted(k for k, v in split_files.items() if v)})"
        )
    names = [name for name in SPLIT_FILE_NAMES if split_files.get(name)]
    frames = {name: read_table(split_files[name]) for name in names}
    first = frames[names[0]]
    for name, frame in frames.items():
        if column in frame.columns:
            raise SourceError(
                f"{origin_of(frame, name)}: already has a column {column!r}, the column split_files "
                "adds to name each row's split: rename it"
            )
        if set(frame.columns) != set(first.columns):
            lacks = sorted(set(first.columns) - set(frame.columns))
            extra = sorted(set(frame.columns) - set(first.columns))
            raise SourceError(
                f"split_files: the {name} file {origin_of(frame, name)} does not have the columns of the "
                f"{names[0]} file {origin_of(first, names[0])} (every split file needs the same columns): "
                f"lacks {lacks}, has extra {extra}"
            )
    log = pd.concat([frames[name][list(first.columns)].assign(**{column: name}) for name in names], ignore_index=True)
    return with_origin(log, ", ".join(f"{origin_of(frames[name], name)} ({name})" for name in names))


def read_own_table_in_chunks(
    filepath: str | Path, chunk_rows: int, side_tables: dict[str, str] | None = None
) -> ChunkedSource:
    """A user's own log read ``chunk_rows`` rows at a time, with its side tables read whole."""
    return ChunkedSource(
        Path(filepath), chunk_rows, {name: read_table(path) for name, path in (side_tables or {}).items()}
    )


def read_own_table(
    filepath: str | Path | None,
    side_tables: dict[str, str] | None = None,
    split_files: Mapping[str, str | Path] | None = None,
) -> dict[str, pd.DataFrame]:
    """A user's own log (CSV/TSV/parquet), or one file per split (:func:`read_split_files`), and optional
    side tables given as name -> file."""
    if (filepath is None) == (not split_files):
        raise SourceError(
            "give the log either as one file (filepath) or as one file per split (split_files), "
            f"not {'both' if filepath is not None else 'neither'}"
        )
    bundle = {"log": read_table(filepath) if filepath is not None else read_split_files(split_files or {})}
    for name, path in (side_tables or {}).items():
        bundle[name] = read_table(path)
    return bundle


def synthetic_bundle(cfg: synthetic.SyntheticConfig) -> dict[str, pd.DataFrame]:
    """The embedded default: generated, with ``attrs`` naming the generator and its seed."""
    tables = synthetic.generate(cfg)
    origin = f"synthetic generator (seed={cfg.seed}, users={cfg.n_users}, videos={cfg.n_videos}, days={cfg.n_days})"
    return {name: with_origin(frame, f"{origin}: {name}") for name, frame in tables.items()}


class EngineSource(dict):
    """A source bundle of engine tables (Ibis), with ``origins``: table name -> the file(s) it came from."""

    def __init__(self, tables: dict, origins: dict[str, str]) -> None:
        super().__init__(tables)
        self.origins = dict(origins)


def read_engine_source(tables: Mapping[str, str | Path], con: Any) -> EngineSource:
    """Each named table (``log``, side tables, optional ``directions``) as a lazy engine scan of its parquet
    file, folder or glob, or CSV/TSV file(s). Nothing is loaded into Python memory; a file that is absent,
    empty or that the engine cannot parse fails naming it."""
    out, origins = {}, {}
    for name, spec in tables.items():
        pattern = str(spec)
        path = Path(pattern)
        files = sorted(glob.glob(str(path / "*.parquet"))) if path.is_dir() else sorted(glob.glob(pattern))
        if not files:
            raise SourceError(f"{pattern}: file not found (table '{name}')")
        for file in files:
            _check_file(Path(file))
        parquet = all(f.lower().endswith(".parquet") for f in files)
        target = str(path / "*.parquet") if path.is_dir() else pattern
        with engine_errors(pattern):
            if parquet:
                table = con.read_parquet(target)
            else:
                sep = "\t" if all(f.lower().endswith(".tsv") for f in files) else _sniff_separator(Path(files[0]))
                table = con.read_csv(
                    files if len(files) > 1 else files[0],
                    **_strict_csv(str(getattr(con, "name", "duckdb")), sep),
                )
            table.columns  # noqa: B018 - resolves the schema now, so a bad file fails here, naming it
        out[name], origins[name] = table, pattern
    return EngineSource(out, origins)


def _strict_csv(engine: str, sep: str) -> dict[str, object]:
    """Engine CSV options that refuse a malformed file instead of guessing around it (DuckDB's sniffer
    would otherwise skip leading lines it cannot fit, silently)."""
    if engine == "duckdb":
        return {"sep": sep, "header": True, "skip": 0, "strict_mode": True}
    return {"sep": sep, "header": True, "mode": "FAILFAST"}


@contextmanager
def engine_errors(pattern: str) -> Iterator[None]:
    """Engine errors while reading ``pattern`` (lazy scans fail when first run) as a :class:`SourceError`."""
    try:
        yield
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's own parse errors, re-raised naming the file
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"{pattern}: the data engine cannot read it: {first}") from exc
