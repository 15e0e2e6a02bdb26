"""The data stages on the engine reproduce the pandas stages they replaced, and Spark reproduces DuckDB.

Oracle: ``tests/support/pandas_reference.py`` (the pandas implementation before the engine). On the
default synthetic generator (scaled down): ids, buckets, splits and row order exactly; float64 spec
values to 1e-9 relative (sums run in another order); float32 dense inputs within one float32 step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.data import synthetic
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.relational import encoding, log_features, splitting, transformer
from ccss_pipeline.spec import FeatureSpec
from tests.support import pandas_reference as reference
from tests.support.configs import project_features, project_schema
from tests.support.split_reference import split_rows

SCHEMA = project_schema()
FEATURES = project_features()
RTOL = 1e-9


@pytest.fixture(scope="module")
def interactions() -> pd.DataFrame:
    bundle = synthetic.generate(synthetic.SyntheticConfig(n_users=400, n_videos=600, n_days=8))
    return build_interactions(bundle, SCHEMA)


def run_stages(table) -> tuple[pd.DataFrame, list, FeatureSpec, list[pd.DataFrame]]:
    """Log features, split, fit and encode on the engine that holds ``table``."""
    featured = log_features.add_log_features(table, SCHEMA.log_features)
    parts = splitting.split_table(featured, FEATURES.split)
    spec = transformer.fit_feature_spec(parts[0], SCHEMA, FEATURES)
    inputs = [encoding.to_model_input(p, spec).to_pandas() for p in parts]
    rows = [p.select("row").to_pandas()["row"].sort_values().to_numpy() for p in parts]
    return featured.order_by("row").to_pandas(), rows, spec, inputs


def assert_specs_close(ours: FeatureSpec, theirs: FeatureSpec) -> None:
    assert ours.categorical == theirs.categorical  # vocabularies and their order exactly
    for a, b in zip(ours.numerical, theirs.numerical, strict=True):
        assert a.name == b.name
        assert a.boundaries == b.boundaries, a.name  # buckets exactly
        assert a.centres == b.centres and a.quantiles == b.quantiles, a.name
        np.testing.assert_allclose([a.mean, a.std], [b.mean, b.std], rtol=RTOL, err_msg=a.name)
        np.testing.assert_allclose(a.centres_dense, b.centres_dense, rtol=RTOL, atol=1e-12, err_msg=a.name)


def assert_inputs_close(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    assert list(ours.columns) == list(theirs.columns)
    for column in ours.columns:
        a, b = ours[column].to_numpy(), theirs[column].to_numpy()
        assert a.dtype == b.dtype, column
        if a.dtype == np.float32:
            np.testing.assert_allclose(a, b, rtol=2**-22, atol=1e-7, err_msg=column)
        else:
            np.testing.assert_array_equal(a, b, err_msg=column)


def test_duckdb_reproduces_the_pandas_stages(interactions):
    import ibis

    featured, rows, spec, inputs = run_stages(ibis.duckdb.connect().create_table("i", interactions))

    expected = reference.add_log_features(interactions, SCHEMA.log_features)
    pd.testing.assert_frame_equal(featured, expected)  # the leak-free features: exactly
    expected_parts = split_rows(expected, FEATURES.split)
    for got, part in zip(rows, expected_parts, strict=True):
        np.testing.assert_array_equal(got, part["row"].to_numpy())  # the same rows in each split
    expected_spec = reference.fit_feature_spec(expected_parts[0], SCHEMA, FEATURES)
    assert_specs_close(spec, expected_spec)
    for got, part in zip(inputs, expected_parts, strict=True):
        assert_inputs_close(got, reference.to_model_input(part, expected_spec))


def test_frames_as_in_memory_tables_run_the_engine(interactions):
    """Frames turned into in-memory engine tables (tests.support.frame_stages) give the pandas oracle's results."""
    from tests.support.frame_stages import add_log_features, fit_feature_spec, to_model_input

    featured = add_log_features(interactions, SCHEMA.log_features)
    pd.testing.assert_frame_equal(featured, reference.add_log_features(interactions, SCHEMA.log_features))
    train = split_rows(featured, FEATURES.split)[0]
    spec = fit_feature_spec(train, SCHEMA, FEATURES)
    assert_specs_close(spec, reference.fit_feature_spec(train, SCHEMA, FEATURES))
    assert_inputs_close(to_model_input(train, spec), reference.to_model_input(train, spec))


@pytest.mark.spark
def test_spark_reproduces_duckdb(interactions, spark_session, tmp_path):
    import ibis

    path = tmp_path / "interactions.parquet"
    interactions.to_parquet(path, index=False)
    on_duckdb = run_stages(ibis.duckdb.connect().read_parquet(str(path)))
    on_spark = run_stages(ibis.pyspark.connect(spark_session).read_parquet(str(path)))

    pd.testing.assert_frame_equal(on_spark[0], on_duckdb[0], check_dtype=False)
    for a, b in zip(on_spark[1], on_duckdb[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert_specs_close(on_spark[2], on_duckdb[2])  # exact order statistics: no approximate quantile
    for a, b in zip(on_spark[3], on_duckdb[3], strict=True):
        assert_inputs_close(a, b)


def test_the_join_reproduces_the_pandas_join():
    """The canonical interaction table (joins, parsed timestamps, dedupe, order, ``row``) exactly as before."""
    bundle = synthetic.generate(synthetic.SyntheticConfig(n_users=300, n_videos=400, n_days=5, seed=9))
    log = bundle["log"]
    bundle["log"] = pd.concat([log, log.iloc[[3, 4, 4]]], ignore_index=True)  # repeated impressions
    pd.testing.assert_frame_equal(build_interactions(bundle, SCHEMA), reference.build_interactions(bundle, SCHEMA))
    scoring = build_interactions(bundle, SCHEMA, for_scoring=True)
    pd.testing.assert_frame_equal(scoring, reference.build_interactions(bundle, SCHEMA, for_scoring=True))
    assert len(scoring) == len(bundle["log"])  # rows to score: none dropped


@pytest.mark.spark
def test_spark_gate_and_join_reproduce_duckdb(spark_session, tmp_path):
    """An engine source on Spark: the raw gate's verdict and the joined table equal DuckDB's."""
    import ibis

    from ccss_pipeline.config import ValidationConfig
    from ccss_pipeline.data.relational.interactions import build_interactions as on_engine
    from ccss_pipeline.data.sources import read_engine_source
    from ccss_pipeline.data.validation.table_gate import validate_source_tables

    paths = synthetic.write_parquet(
        synthetic.SyntheticConfig(n_users=150, n_videos=200, n_days=3, seed=4), tmp_path / "raw", chunk_rows=500
    )
    users = pd.read_parquet(paths["users"])
    users.loc[[0, 3], "user_active_days"] = -1  # a bad row for the gate to find
    users.to_parquet(paths["users"], index=False)
    tables = {name: str(path) for name, path in paths.items()}
    verdicts, joined = [], []
    for con in (ibis.duckdb.connect(), ibis.pyspark.connect(spark_session)):
        source = read_engine_source(tables, con)
        report = validate_source_tables(source, source.origins, SCHEMA, ValidationConfig(), batch_rows=1000)
        verdicts.append([(f.table, f.column, f.rule, f.unexpected_count) for f in report.failures])
        joined.append(on_engine(source, SCHEMA).to_pandas())
    assert verdicts[0] == verdicts[1] == [("users", "user_active_days", "count >= 0", 2)]
    pd.testing.assert_frame_equal(joined[1], joined[0], check_dtype=False)


@pytest.mark.spark
def test_spark_numbers_the_log_once(spark_session, tmp_path):
    """Spark re-evaluates an unordered ``row_number()`` at every read, each time in the order one partition
    happens to receive the rows, and the join reads the log's file positions twice (the duplicate check's
    group-by and the rows it keeps): a 10M-row log of several files kept 1 row. The positions must come
    from one cached numbering, not from the plan."""
    import ibis

    from ccss_pipeline.data.relational.interactions import build_interactions as on_engine
    from ccss_pipeline.data.sources import read_engine_source

    paths = synthetic.write_parquet(
        synthetic.SyntheticConfig(n_users=60, n_videos=80, n_days=2, seed=5), tmp_path / "raw", chunk_rows=300
    )
    tables = {name: str(path) for name, path in paths.items()}
    unordered = "ROW_NUMBER() OVER (ORDER BY NULL)"
    on_spark = on_engine(read_engine_source(tables, ibis.pyspark.connect(spark_session)), SCHEMA)
    assert unordered not in ibis.to_sql(on_spark, dialect="pyspark")
    numbered_in_plan = ibis.to_sql(on_engine(read_engine_source(tables, ibis.duckdb.connect()), SCHEMA), "pyspark")
    assert unordered in numbered_in_plan  # DuckDB numbers in scan order within the plan: no cache needed
    assert len(on_spark.to_pandas()) == sum(len(pd.read_parquet(f)) for f in sorted(paths["log"].glob("*.parquet")))
