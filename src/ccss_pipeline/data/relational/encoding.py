"""The encoding of a fitted spec (:mod:`ccss_pipeline.encoding`) as one projection of an engine table.

Vocabulary joins for ids (on integers for integer-coded ids, integral floats included), a binary search
of comparisons with the boundaries for buckets (= ``searchsorted(..., side="right")``), the scaled
transform for dense values: the rules of :mod:`ccss_pipeline.encoding` written as SQL expressions, so a
split of any size is encoded where it lives (DuckDB, Spark) and equals the NumPy encoding bit for bit.
"""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import pandas as pd

from ccss_pipeline.data.relational import interactions
from ccss_pipeline.data.relational.literals import is_finite, real
from ccss_pipeline.encoding import DENSE_CLIP, integer_vocabulary
from ccss_pipeline.spec import (
    GROUP_COLUMN,
    LABEL_COLUMN,
    ORACLE_COLUMN,
    TIME_COLUMN,
    CategoricalFeature,
    FeatureSpec,
)

#: Each row's position in the canonical interaction table (its one home: the join that writes it): the
#: encoded split comes back in its order.
ROW = interactions.ROW


def transform_expr(value: Any, transform: str) -> Any:
    """SQL form of :func:`ccss_pipeline.encoding.apply_transform` (sign · ln(1 + |x|))."""
    if transform == "log1p":
        return value.sign() * (value.abs() + real(1.0)).ln()
    return value


def bucket_expr(value: Any, boundaries: list[float]) -> Any:
    """Number of boundaries ≤ value: ``numpy.searchsorted(boundaries, value, side="right")``, as a
    binary search of nested ``CASE`` expressions (log2 of the boundaries comparisons per value, not one
    per boundary). ``value`` must be finite (callers send the others to the missing bucket)."""
    edges = [real(edge) for edge in boundaries]

    def search(lo: int, hi: int) -> Any:  # the count among edges[lo:hi], knowing edges[:lo] <= value
        if lo == hi:
            return ibis.literal(lo, type="int64")
        mid = (lo + hi) // 2
        return ibis.ifelse(value >= edges[mid], search(mid + 1, hi), search(lo, mid))

    return search(0, len(edges))


def as_text(value: Any) -> Any:
    """An id as the text a vocabulary holds."""
    return value.cast("string")


def fits_int64(kind: Any) -> bool:
    """Whether an engine type's values are all int64 values (ids grouped and joined as integers)."""
    return bool(kind.is_signed_integer() or (kind.is_unsigned_integer() and kind.nbytes < 8))


def _vocabulary_table(feature: CategoricalFeature, integers: list[int] | None) -> ibis.Table:
    """(``__value``, ``__code``) of a vocabulary. ``__value`` is the vocabulary's text, or for an
    integer-coded one (:func:`integer_vocabulary`) the integer each entry spells, so the join hashes
    integers instead of casting every row to text, and ``63.0`` meets ``63``."""
    codes = np.arange(1, len(feature.vocabulary) + 1, dtype=np.int64)
    if integers is not None:
        frame = pd.DataFrame({"__value": np.asarray(integers, dtype=np.int64), "__code": codes})
        return ibis.memtable(frame, schema={"__value": "int64", "__code": "int64"})
    frame = pd.DataFrame({"__value": pd.Series(feature.vocabulary, dtype=object), "__code": codes})
    return ibis.memtable(frame, schema={"__value": "string", "__code": "int64"})


def _integer_key(column: Any) -> Any | None:
    """The join key of a column against an integer vocabulary: integers as int64; floats (an id column
    that turned float because one value is blank, Spark's doubles) by their integral values, a
    fractional or non-finite one NULL (no integer id spells it: out of vocabulary, its row alone);
    None for any other type (matched as text)."""
    kind = column.type()
    if fits_int64(kind):
        return column.cast("int64")
    if not kind.is_floating():
        return None
    value = column.cast("float64")
    integral = (value.abs() < real(2.0**63)) & (value == value.floor())  # NaN and ±inf fail both
    return ibis.ifelse(integral, value, ibis.null("float64")).cast("int64")


def _clipped(value: Any) -> Any:
    """``value`` clipped to ±DENSE_CLIP (``value`` is never NULL: LEAST/GREATEST, not Ibis' NULL-aware
    ``clip``, whose CASE repeats the scaled expression, ``ln`` included, at every reference)."""
    return ibis.greatest(real(-DENSE_CLIP), ibis.least(real(DENSE_CLIP), value))


def _with_codes(table: ibis.Table, spec: FeatureSpec) -> ibis.Table:
    """``table`` joined with every vocabulary: ``__code_<column>`` per categorical (NULL: unseen)."""
    out = table
    for cat in spec.categorical:
        integers = integer_vocabulary(cat)
        key = _integer_key(out[cat.name]) if integers is not None else None
        if key is None:
            integers, key = None, as_text(out[cat.name])
        vocab = _vocabulary_table(cat, integers).rename(
            **{f"__value_{cat.column}": "__value", f"__code_{cat.column}": "__code"}
        )
        out = out.left_join(vocab, key == vocab[f"__value_{cat.column}"])
    return out


def to_model_input(table: ibis.Table, spec: FeatureSpec) -> ibis.Table:
    """The model-ready table of one split (columns documented in :mod:`ccss_pipeline.spec`), in the
    canonical row order (``row``) when the table has it.

    Two projections: the first computes each dense feature's scaled value once (0 when the value is
    missing or not finite), the second clips it and casts; the engine then evaluates ``ln`` once a row."""
    out = _with_codes(table, spec)
    scaled: dict[str, Any] = {}
    for num in spec.numerical:
        raw = out[num.name].cast("float64")
        value = (transform_expr(raw, num.transform) - real(num.mean)) / real(num.std)
        scaled[f"__scaled_{num.dense_column}"] = ibis.ifelse(is_finite(raw), value, real(0.0))
    out = out.mutate(**scaled)
    columns: dict[str, Any] = {
        LABEL_COLUMN: out[LABEL_COLUMN].cast("int8"),
        GROUP_COLUMN: out[GROUP_COLUMN],
        TIME_COLUMN: out[TIME_COLUMN].cast("int64"),
    }
    for cat in spec.categorical:
        columns[cat.column] = out[f"__code_{cat.column}"].coalesce(0).cast("int64")
    for num in spec.numerical:
        raw = out[num.name].cast("float64")
        columns[num.dense_column] = _clipped(out[f"__scaled_{num.dense_column}"]).cast("float32")
        columns[num.bucket_column] = ibis.ifelse(
            is_finite(raw), bucket_expr(raw, num.boundaries), num.missing_bucket
        ).cast("int64")
    if ORACLE_COLUMN in table.columns:
        columns[ORACLE_COLUMN] = out[ORACLE_COLUMN].cast("float64")
    if ROW in table.columns:
        return out.order_by(out[ROW]).select(**columns)
    return out.select(**columns)
