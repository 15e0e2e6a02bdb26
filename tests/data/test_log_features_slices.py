"""DuckDB runs the log features' narrow tables into temporary tables, each window a slice of its
partitions at a time when the log is long for the memory limit: the slices change no value."""

from __future__ import annotations

import gc

import ibis
import pandas as pd
import pytest

from ccss_pipeline.data import synthetic
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.relational import log_features
from tests.support import pandas_reference as reference
from tests.support.configs import ALL_LOG_FEATURES as ALL_FEATURES
from tests.support.configs import project_schema

SCHEMA = project_schema()


@pytest.fixture(scope="module")
def interactions() -> pd.DataFrame:
    bundle = synthetic.generate(synthetic.SyntheticConfig(n_users=150, n_videos=200, n_days=4, seed=3))
    return build_interactions(bundle, SCHEMA)


def test_sliced_windows_equal_one_plan(interactions, monkeypatch):
    con = ibis.duckdb.connect(memory_limit="1GB")
    table = con.create_table("interactions", interactions)
    whole = log_features.add_log_features(table, ALL_FEATURES).order_by("row").to_pandas()
    monkeypatch.setattr(log_features, "_ROWS_PER_GIB", len(interactions) // 4)  # about 5 window slices
    monkeypatch.setattr(log_features, "_JOIN_ROWS_PER_GIB", len(interactions) // 6)  # about 7 time ranges
    plan = log_features._Materializer(con, len(interactions))
    assert plan.n_slices > 3 and plan.n_join_slices > 5
    sliced = log_features.add_log_features(table, ALL_FEATURES).order_by("row").to_pandas()
    pd.testing.assert_frame_equal(sliced, whole)  # bit-identical
    configured = log_features.add_log_features(table, SCHEMA.log_features).order_by("row").to_pandas()
    pd.testing.assert_frame_equal(configured, reference.add_log_features(interactions, SCHEMA.log_features))


def test_temporary_tables_dropped_with_the_expression(interactions):
    con = ibis.duckdb.connect()
    table = con.create_table("interactions", interactions)
    featured = log_features.add_log_features(table, SCHEMA.log_features)
    assert any(name.startswith("__ccss_log_features_") for name in con.list_tables())
    assert featured.count().execute() == len(interactions)
    del featured
    gc.collect()
    assert con.list_tables() == ["interactions"]
