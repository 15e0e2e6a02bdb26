"""The ``feature_engineering`` parameters: how rows are split and how features are bucketed."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ccss_pipeline.config.base import Seed, StrictConfig


class SplitLabels(StrictConfig):
    """``mode: column``: the values of ``schema.split_column`` that name each split (compared as text).

    ``validation: null`` (or no row with that value): validation is carved from train, its last
    ``validation_fraction`` in time when the schema has a timestamp, else a seeded stratified share.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)  # `train: 0` is "0"

    train: str = "train"
    validation: str | None = "validation"
    test: str = "test"


class SplitConfig(StrictConfig):
    """How rows are split into train / validation / test.

    - ``time``: the latest ``test_fraction`` of events is test, the ``validation_fraction`` before it
      validation (needs ``schema.timestamp``);
    - ``row_order``: the same by the order of the rows in the file;
    - ``random``: a seeded random split, stratified by the label unless ``stratify: false``;
    - ``column``: ``schema.split_column`` names each row's split (values in ``labels``).
    """

    mode: Literal["time", "row_order", "random", "column"] = "time"
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    seed: Seed = 0
    stratify: bool = True
    labels: SplitLabels = SplitLabels()


class FeatureConfig(StrictConfig):
    """Feature engineering (``feature_engineering`` in parameters)."""

    split: SplitConfig = SplitConfig()
    n_buckets: int = Field(16, ge=2, le=1024)
    min_category_count: int = Field(2, ge=1)
    # dense standardization uses training values winsorized at these quantiles (q, 1 - q), so one
    # extreme value cannot squash every other value of its feature to the same dense input
    outlier_quantile: float = Field(0.001, ge=0, lt=0.5)
    # a directed feature left with one bucket cannot be constrained by CCSS: warn (log + report) or fail
    unconstrained_directed: Literal["warn", "fail"] = "warn"
    # a numerical feature with at most this many distinct training values is discrete (a count, days, a
    # rating): its observed values are kept in the spec, and the raw grid, the edge test and the
    # stratified counterfactual anchors use them instead of interpolated quantiles; 0 = never
    discrete_max_values: int = Field(200, ge=0, le=10_000)
