"""Train / validation / test split: by time, by row order, seeded random, or a column naming each row's split.

``feature_engineering.split.mode`` picks the way (:class:`ccss_pipeline.config.SplitConfig`):

- ``time``: the latest ``test_fraction`` of events is test, the ``validation_fraction`` before it
  validation; cut points lie between distinct timestamps (needs ``schema.timestamp``);
- ``row_order``: the same fractions by the order of the rows in the file (``schema.timestamp: null``;
  the canonical ``event_ts`` is then the row number);
- ``random``: a seeded random split (scikit-learn's ``train_test_split``), stratified by the label
  unless ``stratify: false``;
- ``column``: ``schema.split_column`` names each row's split; its values are matched as text against
  ``split.labels``. Without validation rows, validation is carved from train: its last
  ``validation_fraction`` (of the train rows) in time when the schema has a timestamp, else a seeded
  (stratified) share.

The split runs on the engine (:func:`ccss_pipeline.data.relational.splitting.split_table`): ``time``
and ``row_order`` there, as filters on cut points; ``random`` and ``column`` by the in-memory rules of
this module (:func:`split_in_memory`). The canonical split column
(:data:`ccss_pipeline.spec.SPLIT_COLUMN`) is dropped from every output, so it can never become a model
feature. :func:`split_config_problems` lists the settings that contradict
each other across ``schema`` and ``feature_engineering``; the split node calls it before any work.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig, SplitConfig
from ccss_pipeline.spec import LABEL_COLUMN, SPLIT_COLUMN, TIME_COLUMN

logger = logging.getLogger(__name__)

Splits = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]

#: How many distinct values an error message lists at most.
_MAX_SHOWN = 10


class SplitConfigError(ValueError):
    """``schema`` and ``feature_engineering.split`` contradict each other; the message names the keys."""


class SplitColumnError(ValueError):
    """The split column holds a value that names no split (or is missing)."""


# --------------------------------------------------------------------------------- configuration
def split_config_problems(schema: SchemaConfig, features: FeatureConfig) -> list[tuple[str, str]]:
    """(dotted key, message) per contradiction between the schema and the split settings; empty if none."""
    split = features.split
    mode = split.mode
    problems: list[tuple[str, str]] = []
    if mode == "column" and not schema.split_column:
        problems.append(
            (
                "schema.split_column",
                "feature_engineering.split.mode is 'column', but schema.split_column is not set: name the column "
                "that holds each row's split (with separate files per split, TableSourceDataset's split_files "
                f"adds it as {SPLIT_COLUMN!r})",
            )
        )
    if schema.split_column and mode != "column":
        problems.append(
            (
                "feature_engineering.split.mode",
                f"schema.split_column is {schema.split_column!r}, but feature_engineering.split.mode is {mode!r}: "
                "set mode: column to split by that column, or remove schema.split_column",
            )
        )
    if mode == "time" and not schema.timestamp:
        problems.append(
            (
                "feature_engineering.split.mode",
                "mode 'time' needs schema.timestamp, which is null: use mode: row_order (the same fractions by the "
                "order of the rows in the file) or mode: random (a seeded split), or set schema.timestamp",
            )
        )
    if mode == "row_order" and schema.timestamp:
        problems.append(
            (
                "feature_engineering.split.mode",
                f"mode 'row_order' splits by the order of the rows in the file, but schema.timestamp is "
                f"{schema.timestamp!r} and the rows are sorted by it: use mode: time, or set schema.timestamp: null",
            )
        )
    if mode == "column":
        problems.extend(_column_mode_problems(schema, split))
    return problems


def _column_mode_problems(schema: SchemaConfig, split: SplitConfig) -> list[tuple[str, str]]:
    """The contradictions of ``mode: column`` alone: labels that name one split twice, and a feature
    that would shadow the canonical split column."""
    problems: list[tuple[str, str]] = []
    labels = split.labels
    named = [
        (k, v)
        for k, v in (("train", labels.train), ("validation", labels.validation), ("test", labels.test))
        if v is not None
    ]
    values = [v for _, v in named]
    if len(set(values)) < len(values):
        problems.append(
            (
                "feature_engineering.split.labels",
                "train, validation and test must be different values, got " + ", ".join(f"{k}={v!r}" for k, v in named),
            )
        )
    features_named = schema.categorical + [n.name for n in schema.all_numerical]
    if schema.split_column and SPLIT_COLUMN in features_named:
        problems.append(
            (
                "schema",
                f"a feature is named {SPLIT_COLUMN!r}, the canonical split column of the interaction table: "
                "rename that feature",
            )
        )
    return problems


def check_split_config(schema: SchemaConfig, features: FeatureConfig) -> None:
    """Raise :class:`SplitConfigError` listing every problem of :func:`split_config_problems`."""
    problems = split_config_problems(schema, features)
    if problems:
        raise SplitConfigError(
            "invalid split configuration (nothing was split):\n"
            + "\n".join(f"  - key '{key}': {message}" for key, message in problems)
        )


def split_sentence(split: SplitConfig) -> str:
    """How the rows were split, in the words the report and the model card both print (their one
    source): only a ``time`` split puts every test event after every training event, so no other mode
    may claim it — a reader takes "time-ordered" as "no look-ahead", which a random split does not give."""
    if split.mode == "time":
        return "time-ordered: every validation event is later than every train event, every test event later still"
    if split.mode == "row_order":
        return "by the order of the rows in the file (no timestamp): train first, then validation, then test"
    if split.mode == "random":
        how = "stratified by the label" if split.stratify else "not stratified"
        return f"a seeded random split (seed {split.seed}, {how}): the splits are not ordered in time"
    carved = "" if split.labels.validation is not None else "; validation is carved from the train rows"
    return (
        "given with the data (a split column or one file per split): the splits are not checked to be ordered "
        f"in time{carved}"
    )


# ------------------------------------------------------------------------------ in-memory modes
def split_in_memory(
    frame: pd.DataFrame, cfg: SplitConfig, *, has_timestamp: bool = True, split_column: str = SPLIT_COLUMN
) -> Splits:
    """The ``random`` and ``column`` modes, on the rows read into memory (scikit-learn's stratified draw
    has no engine equivalent; the engine runs ``time`` and ``row_order``,
    :mod:`ccss_pipeline.data.relational.splitting`). The canonical split column is dropped.

    ``has_timestamp``: whether ``event_ts`` is a time (else the row number); it decides how ``column``
    mode carves validation from train. ``split_column``: the raw column's name, for messages.
    """
    if len(frame) == 0:
        raise ValueError("cannot split an empty interaction table")
    if cfg.mode == "random":
        parts = split_randomly(frame, cfg)
    elif cfg.mode == "column":
        parts = split_by_column(frame, cfg, has_timestamp=has_timestamp, split_column=split_column)
    else:
        raise ValueError(f"split mode {cfg.mode!r} runs on the engine (data.relational.splitting), not in memory")
    train, valid, test = (p.drop(columns=[SPLIT_COLUMN], errors="ignore") for p in parts)
    return train, valid, test


def split_randomly(frame: pd.DataFrame, cfg: SplitConfig) -> Splits:
    """Seeded random split, stratified by the label when ``cfg.stratify``; rows keep their order."""
    n = len(frame)
    if n == 0:
        raise ValueError("cannot split an empty interaction table")
    rng = np.random.RandomState(cfg.seed)
    labels = frame[LABEL_COLUMN].to_numpy() if cfg.stratify else None
    rest, test = _random_share(np.arange(n), labels, cfg.test_fraction, rng, "test")
    rest_labels = labels[rest] if labels is not None else None
    train, valid = _random_share(
        rest, rest_labels, cfg.validation_fraction / (1.0 - cfg.test_fraction), rng, "validation"
    )
    return _take(frame, train), _take(frame, valid), _take(frame, test)


def split_by_column(
    frame: pd.DataFrame,
    cfg: SplitConfig,
    *,
    has_timestamp: bool = True,
    split_column: str = SPLIT_COLUMN,
) -> Splits:
    """Each row to the split its value of the canonical split column names (``cfg.labels``; compared as
    text, surrounding blanks ignored).

    A value that names no split (or a missing value) raises :class:`SplitColumnError` naming the column,
    the values found and the setting. Without validation rows (``labels.validation`` null, or no row
    with that value) validation is carved from train (see the module docstring).
    """
    if SPLIT_COLUMN not in frame.columns:
        raise SplitColumnError(
            f"feature_engineering.split.mode is 'column', but the interaction table has no {SPLIT_COLUMN!r} "
            f"column: set schema.split_column to the raw column naming each row's split (now {split_column!r})"
        )
    labels = cfg.labels
    text = split_values_as_text(frame[SPLIT_COLUMN])
    names = {
        k: v.strip() if v is not None else None
        for k, v in (("train", labels.train), ("validation", labels.validation), ("test", labels.test))
    }
    known = [v for v in names.values() if v is not None]
    unknown = ~text.isin(known).to_numpy(dtype=bool)
    if unknown.any():
        counts = text.fillna("<missing>").value_counts(sort=False)
        found = ", ".join(f"{v!r} ({counts[v]} rows)" for v in sorted(counts.index, key=str)[:_MAX_SHOWN])
        more = f" and {len(counts) - _MAX_SHOWN} more" if len(counts) > _MAX_SHOWN else ""
        bad = sorted(set(text[unknown].fillna("<missing>")), key=str)
        setting = ", ".join(f"{k}={v!r}" for k, v in names.items())
        raise SplitColumnError(
            f"split column {split_column!r} (schema.split_column): {int(unknown.sum())} row(s) have a value "
            f"that names no split: {bad[:_MAX_SHOWN]}; values found: {found}{more}. "
            f"feature_engineering.split.labels is {setting} (values compared as text): fix the column or "
            "set the labels"
        )
    masks = {
        k: (text == v).to_numpy(dtype=bool) if v is not None else np.zeros(len(frame), bool) for k, v in names.items()
    }
    train = np.flatnonzero(masks["train"])
    valid = np.flatnonzero(masks["validation"])
    test = np.flatnonzero(masks["test"])
    if len(valid) == 0 and len(train):
        train, valid = _carve_validation(frame, train, cfg, has_timestamp=has_timestamp)
        how = "its latest events" if has_timestamp else "a seeded " + ("stratified " if cfg.stratify else "") + "share"
        logger.info(
            "split column %r has no validation rows: validation is %d of %d train rows (%s, validation_fraction=%s)",
            split_column,
            len(valid),
            len(train) + len(valid),
            how,
            cfg.validation_fraction,
        )
    return _take(frame, train), _take(frame, valid), _take(frame, test)


# --------------------------------------------------------------------------------------- helpers
def split_values_as_text(values: pd.Series) -> pd.Series:
    """The split column as text (pandas ``string``, missing as ``<NA>``), stripped of surrounding blanks.

    Whole floats (a numeric column with missing values reads as float) are written without ``.0``, so
    ``1.0`` matches the label ``"1"``.
    """
    series = values
    if pd.api.types.is_float_dtype(series):
        present = series.dropna()
        if len(present) and bool(np.all(np.mod(present.to_numpy(), 1) == 0)):
            series = series.astype("Int64")
    return series.astype("string").str.strip()


def _take(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    return frame.iloc[np.sort(positions)].reset_index(drop=True)


def _random_share(
    positions: np.ndarray, labels: np.ndarray | None, fraction: float, rng: np.random.RandomState, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, share): a seeded ``fraction`` of ``positions``, stratified by ``labels`` when given."""
    from sklearn.model_selection import train_test_split

    if len(positions) < 2:
        return positions, positions[:0]
    try:
        rest, share = train_test_split(positions, test_size=fraction, random_state=rng, shuffle=True, stratify=labels)
    except ValueError as exc:
        if labels is None:
            raise
        raise ValueError(
            f"cannot draw the {name} share stratified by the label ({exc}): give more rows of each class, or "
            "set feature_engineering.split.stratify: false"
        ) from exc
    return np.sort(rest), np.sort(share)


def _carve_validation(
    frame: pd.DataFrame, train: np.ndarray, cfg: SplitConfig, *, has_timestamp: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Validation from the train rows: the latest ``validation_fraction`` in time (cut between distinct
    timestamps), else a seeded share stratified by the label when ``cfg.stratify``."""
    if has_timestamp:
        ts = frame[TIME_COLUMN].to_numpy()[train]
        ordered = np.sort(ts, kind="stable")
        n = len(ordered)
        cut = ordered[min(n - 1, int(np.floor(n * (1.0 - cfg.validation_fraction))))]
        return train[ts < cut], train[ts >= cut]
    labels = frame[LABEL_COLUMN].to_numpy()[train] if cfg.stratify else None
    return _random_share(train, labels, cfg.validation_fraction, np.random.RandomState(cfg.seed), "validation")
