"""Rows to score: the log features of new rows, computed from the training log's history alone.

A new row's prior counts must see every training event strictly before it, as a training row does,
but not the other rows being scored: their labels are unknown (or must not leak into each other's
features). The rows are appended to the history with weight 0 (``counted``) and the leak-free log
features of :mod:`ccss_pipeline.data.relational.log_features` are computed over the union, on the
engine that holds the history.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd

from ccss_pipeline.config import SchemaConfig
from ccss_pipeline.data.interactions import ITEM, ROW_COLUMN, USER
from ccss_pipeline.data.relational.in_memory import in_memory
from ccss_pipeline.data.relational.log_features import add_log_features
from ccss_pipeline.data.sources import origin_of
from ccss_pipeline.encoding import integer_vocabulary, integral_ids
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN, FeatureSpec

_HISTORY = "__history__"


class ScoreInputError(ValueError):
    """A column of the rows to score cannot be read the way training read it; the message names the
    file, the column and what training held."""


def _history_is_integer(history: ibis.Table | None, column: str) -> bool:
    """Whether the training log holds ``column`` (a canonical id) as integers."""
    if history is None or column not in history.columns:
        return False
    return bool(history.schema()[column].is_integer())


def integer_coded_columns(
    schema: SchemaConfig, spec: FeatureSpec, history: ibis.Table | None = None
) -> dict[str, bool]:
    """Raw column -> whether it is an id that must be an integer, for every column training coded as
    integers: a categorical feature whose vocabulary spells integers, and the user and item ids when the
    training log holds them as integers (its history is joined on them)."""
    raw = {USER: schema.user, ITEM: schema.item}
    coded: dict[str, bool] = {}
    for feature in spec.categorical:
        column = raw.get(feature.name) or feature.name
        is_id = feature.name in raw and _history_is_integer(history, feature.name)
        if is_id or (feature.vocabulary and integer_vocabulary(feature) is not None):
            coded[column] = is_id
    return coded


def _examples(values: pd.Series) -> str:
    return ", ".join(list(dict.fromkeys(repr(v) for v in values.head(50).tolist()))[:5])


def conform_integer_column(values: pd.Series, where: str, is_id: bool) -> pd.Series:
    """A column training coded as integers, as nullable int64: integral floats (an id column that holds a
    blank, Spark's doubles) become the integers they spell, a blank stays missing in its own row (out of
    vocabulary there, and only there: any chunk size gives the same codes). A fractional or infinite
    value raises :class:`ScoreInputError` naming ``where``; so do text and booleans for an id (``is_id``),
    which the training log's history cannot be joined on. Other text is left as it is: matched as text,
    an unseen category is out of vocabulary."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "integer":
        return values.astype("Int64") if values.dtype == object else values
    if pd.api.types.is_float_dtype(values) or kind in ("floating", "mixed-integer-float", "decimal", "empty"):
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        ids = integral_ids(numbers)
        odd = numbers.notna() & ids.isna()
        if odd.any():
            raise ScoreInputError(
                f"{where}: {int(odd.sum())} value(s) are not whole numbers (e.g. {_examples(values[odd])}), "
                "but training coded this column as integers; a fractional id matches no training id and "
                "cannot be rounded to one. Fix those values (or leave them blank)."
            )
        return ids
    if is_id:
        raise ScoreInputError(
            f"{where}: holds {kind} values, not numbers (e.g. {_examples(values.dropna())}), but the model "
            "was trained on integer ids, and the training log's history is joined on them; give the ids as "
            "integers."
        )
    return values


def conform_ids(bundle: dict[str, pd.DataFrame], coded: dict[str, bool]) -> dict[str, pd.DataFrame]:
    """Every table of a bundle to score with its integer-coded columns (``integer_coded_columns``)
    conformed by :func:`conform_integer_column`, before the engine reads them."""
    out = {}
    for name, frame in bundle.items():
        changes = {
            column: conform_integer_column(frame[column], f"column '{column}' of {origin_of(frame, name)}", is_id)
            for column, is_id in coded.items()
            if column in frame.columns
        }
        out[name] = frame.assign(**changes) if changes else frame
    return out


def with_history_log_features(rows: pd.DataFrame, history: ibis.Table, schema: SchemaConfig) -> pd.DataFrame:
    """``rows`` (canonical, from ``build_interactions(..., for_scoring=True)``: a chunk in memory) with
    the schema's log features computed from ``history`` (the canonical training log, an engine table)
    strictly before each row.

    Without a timestamp the rows come after the whole history (row order). Returns the rows in their
    input order (``row``).
    """
    rows = rows.copy()
    if not schema.log_features:
        return rows.sort_values(ROW_COLUMN, kind="stable").reset_index(drop=True)
    if not schema.timestamp:
        last = int(history[TIME_COLUMN].max().to_pandas())
        rows[TIME_COLUMN] = last + 1 + np.arange(len(rows), dtype=np.int64)
    keys = [c for c in ("user", "item") if c in rows.columns and c in history.columns]
    past = history.select(*keys, TIME_COLUMN, LABEL_COLUMN).mutate(
        **{_HISTORY: ibis.literal(1.0), ROW_COLUMN: ibis.literal(-1, type="int64")}
    )
    new = in_memory(rows[[*keys, TIME_COLUMN, ROW_COLUMN]].assign(**{LABEL_COLUMN: 0, _HISTORY: 0.0}))
    new = new.select(*past.columns).cast(past.schema())
    both = add_log_features(past.union(new), schema.log_features, counted=_HISTORY)
    names = [f.name for f in schema.log_features]
    computed = both.filter(both[_HISTORY] == 0.0).select(ROW_COLUMN, *names).to_pandas()
    merged = rows.drop(columns=[c for c in names if c in rows.columns]).merge(computed, on=ROW_COLUMN, how="left")
    return merged.sort_values(ROW_COLUMN, kind="stable").reset_index(drop=True)
