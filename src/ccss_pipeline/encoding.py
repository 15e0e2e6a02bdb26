"""The encoding a fitted :class:`~ccss_pipeline.spec.FeatureSpec` defines, beside the spec.

A fitted spec says how a raw value becomes the model's inputs: the transform and standardization of
its dense value, the bucket its boundaries put it in, the vocabulary index of an id. These rules have
one home here, in NumPy, because two kinds of callers need them: the model and the evaluation encode
arrays of *moved* values in their hot paths (:func:`encode_numerical`), and the engine's encoding of
whole tables (:mod:`ccss_pipeline.data.relational.encoding`) writes the same rules as SQL expressions
(the tests hold the two equal, bit for bit).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ccss_pipeline.spec import CategoricalFeature, NumericalFeature

#: Standardized dense values are clipped here so a 1e12 outlier cannot blow up a forward pass.
DENSE_CLIP = 10.0


def apply_transform(values: np.ndarray, transform: str) -> np.ndarray:
    """``log1p`` is applied symmetrically (sign · log1p|x|), equal to log1p for the usual x ≥ 0."""
    values = np.asarray(values, dtype=np.float64)
    if transform == "log1p":
        return np.sign(values) * np.log1p(np.abs(values))
    return values


def encode_numerical(values: np.ndarray, feature: NumericalFeature) -> tuple[np.ndarray, np.ndarray]:
    """(dense, bucket) of raw values; missing values go to the missing bucket with dense 0."""
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    safe = np.where(missing, 0.0, values)
    with np.errstate(over="ignore"):  # an overflow is ±inf, clipped like any large value
        dense = np.clip(
            (apply_transform(safe, feature.transform) - feature.mean) / feature.std, -DENSE_CLIP, DENSE_CLIP
        )
    bucket = np.searchsorted(np.asarray(feature.boundaries), safe, side="right")
    dense[missing] = 0.0
    bucket[missing] = feature.missing_bucket
    return dense.astype(np.float32), bucket.astype(np.int64)


#: The text of an integral id in a vocabulary: an integer column's decimal form ("63"), or a float
#: column's ("63.0": pandas' id column that once held a NaN, Spark's doubles).
_INTEGRAL_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.0)?")  # no leading zero: "007" is a code, not 7
_INT64 = (-(2**63), 2**63)


def integer_vocabulary(feature: CategoricalFeature) -> list[int] | None:
    """The vocabulary as the integers it spells, or None when any entry is not an integral id (or two
    entries spell the same one). Integer-coded ids are matched as integers, so ``63``, ``63.0`` and an
    id column that turned float because one value is blank all find the training id ``63``."""
    values = []
    for text in feature.vocabulary:
        if not _INTEGRAL_TEXT.fullmatch(text):
            return None
        value = int(text.removesuffix(".0"))
        if not _INT64[0] <= value < _INT64[1]:
            return None
        values.append(value)
    return values if len(set(values)) == len(values) else None


def integral_ids(values: pd.Series) -> pd.Series:
    """Numbers as nullable int64 ids: integral values kept, fractional, non-finite and missing ones
    NA (no integer id spells them, so they are out of vocabulary)."""
    if pd.api.types.is_integer_dtype(values):
        return values.astype("Int64")  # not through float64, which rounds ids above 2**53
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    integral = np.isfinite(numbers) & (numbers == np.round(numbers)) & (numbers.abs() < 2.0**63)
    return numbers.where(integral).astype("Int64")


def encode_categorical(values: pd.Series, feature: CategoricalFeature) -> np.ndarray:
    """Vocabulary index + 1; unseen or missing ids map to 0 (out of vocabulary). Numbers meet an
    integer vocabulary as integers (:func:`integer_vocabulary`), anything else as text."""
    integers = integer_vocabulary(feature)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if integers is not None and numeric:
        codes = pd.Index(integers, dtype="int64").get_indexer(pd.Index(integral_ids(values)))
    else:
        codes = pd.Index(feature.vocabulary).get_indexer(pd.Index(values.astype(str).where(values.notna(), None)))
    return (codes + 1).astype(np.int64)
