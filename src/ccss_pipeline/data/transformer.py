"""The rules of the train-only fit (spec §2) that hold on any engine, apart from how a table is read.

The fit itself runs on the engine (:mod:`ccss_pipeline.data.relational.transformer`): it reads the
training split through aggregates and calls these for the decisions that are plain NumPy on what it
read — the greedy bucket edges when tied quantile edges collapse, the report of a directed feature
CCSS cannot constrain, and which schema columns are categorical inputs. The encoding of a fitted spec
lives beside the spec (:mod:`ccss_pipeline.encoding`).
"""

from __future__ import annotations

import logging

import numpy as np

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.spec import NumericalFeature

logger = logging.getLogger(__name__)


def greedy_boundaries(distinct: np.ndarray, counts: np.ndarray, n_buckets: int) -> np.ndarray:
    """Inner edges when tied quantile edges collapse: a greedy equal-frequency pass over the sorted
    distinct values and their counts. A heavily tied value gets a bucket of its own and the remaining
    rows share the remaining buckets equally (a count that is zero for 97% of rows gave one bucket,
    so CCSS never constrained it)."""
    cumulative = np.cumsum(counts)
    total, done, start, left, greedy = int(cumulative[-1]), 0, 0, n_buckets, []
    while left > 1 and start < distinct.size - 1:
        target = done + (total - done) / left
        end = max(int(np.searchsorted(cumulative, target, side="left")), start)
        if end >= distinct.size - 1:
            break
        greedy.append(distinct[end + 1])  # the next bucket starts at the next distinct value
        done, start, left = int(cumulative[end]), end + 1, left - 1
    return np.asarray(greedy, dtype=np.float64)


class UnconstrainedFeatureError(ValueError):
    """A directed feature has one bucket, so CCSS cannot constrain it, and the configuration says fail."""


def report_unconstrained(numerical: list[NumericalFeature], cfg: FeatureConfig) -> None:
    """A directed feature with one bucket (a single training value) cannot be moved to a neighbouring
    bucket, so CCSS never constrains it: a loud warning, or an error with ``unconstrained_directed: fail``."""
    stuck = [f.name for f in numerical if f.direction != 0 and f.n_buckets < 2]
    if not stuck:
        return
    message = (
        f"directed feature(s) {stuck} have a single value in the training split, hence one bucket: CCSS "
        "cannot constrain them and their monotonicity is not measurable (the report marks them)"
    )
    if cfg.unconstrained_directed == "fail":
        raise UnconstrainedFeatureError(message + "; feature_engineering.unconstrained_directed is 'fail'")
    logger.warning("%s; set feature_engineering.unconstrained_directed: fail to stop instead", message)


def categorical_columns(schema: SchemaConfig) -> list[str]:
    """User and item ids first (categorical inputs where the schema has them), then its categoricals."""
    ids = [canonical for canonical, column in (("user", schema.user), ("item", schema.item)) if column]
    return [*ids, *[c for c in schema.categorical if c not in (schema.user, schema.item)]]
