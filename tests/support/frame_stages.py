"""The data stages on pandas frames, for tests: each turns its frames into in-memory engine tables
(:mod:`ccss_pipeline.data.relational.in_memory`, the product's one edge for frames), runs the engine
implementation the pipeline runs, and reads the result back as a frame in the input's row order.

They are conveniences for tests that build small frames by hand, not a second implementation: the
pandas implementation the engine is compared to is :mod:`tests.support.pandas_reference`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import FeatureConfig, LogFeature, SchemaConfig
from ccss_pipeline.data.relational import encoding, log_features, transformer
from ccss_pipeline.data.relational.in_memory import in_memory
from ccss_pipeline.lineage import stamp
from ccss_pipeline.pipelines.feature_engineering import nodes
from ccss_pipeline.spec import TIME_COLUMN, FeatureSpec

_POSITION, _COUNTED = "__ccss_position", "__ccss_counted"


def add_log_features(
    interactions: pd.DataFrame, features: list[LogFeature], counted: np.ndarray | None = None
) -> pd.DataFrame:
    """The leak-free log features of a time-sorted frame (a copy, rows and index as given).

    ``counted`` (0/1 per row, default all 1) says which rows are events the features count."""
    if not interactions[TIME_COLUMN].is_monotonic_increasing:
        raise ValueError(f"interactions must be sorted by '{TIME_COLUMN}' before computing log features")
    frame = interactions.reset_index(drop=True)
    if counted is not None:
        frame = frame.assign(**{_COUNTED: np.asarray(counted, dtype=np.float64)})
    table = in_memory(frame, positions=_POSITION)
    featured = log_features.add_log_features(table, features, counted=_COUNTED if counted is not None else None)
    out = (
        featured.order_by(_POSITION)
        .to_pandas()
        .drop(columns=[c for c in (_POSITION, _COUNTED) if c in featured.columns])
    )
    out.index = interactions.index
    return out


def fit_feature_spec(train: pd.DataFrame, schema: SchemaConfig, cfg: FeatureConfig) -> FeatureSpec:
    """The engine's fit on an in-memory training split."""
    return transformer.fit_feature_spec(in_memory(train), schema, cfg)


def to_model_input(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model-ready table of an in-memory split, rows in the frame's order, stamped with the spec."""
    table = encoding.to_model_input(in_memory(frame, positions=encoding.ROW), spec).to_pandas()
    return stamp(table.reset_index(drop=True), spec)


def bucket_boundaries(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """The fit's inner bucket edges of an array of raw values."""
    return transformer.boundaries(in_memory(pd.DataFrame({"v": np.asarray(values, dtype=np.float64)})), "v", n_buckets)


def split_interactions(
    interactions: pd.DataFrame, features: FeatureConfig, schema: SchemaConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The split node on a frame: each split's rows in the frame's order (index reset)."""
    table = in_memory(interactions, positions=_POSITION)
    parts = nodes.split_interactions(table, features, schema)
    train, valid, test = (
        part.to_pandas().sort_values(_POSITION, kind="stable").drop(columns=_POSITION).reset_index(drop=True)
        for part in parts
    )
    return train, valid, test
