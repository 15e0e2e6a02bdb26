"""The engine's shortcuts give what the general paths give: the fit from (value, count) tables against
the sorted column, inferred counts below an edge against a scan, split cut points by selection against
the sorted window, integer timestamps by casts against the parser, vocabulary joins on integers
against joins on text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.data.relational import encoding, order_statistics, splitting, transformer
from ccss_pipeline.data.relational.timestamps import epoch_ms, to_epoch_ms
from ccss_pipeline.data.timestamps import epoch_ms as parse
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, TIME_COLUMN, CategoricalFeature
from tests.support import pandas_reference as reference

SCHEMA = SchemaConfig(
    source="table",
    label="clicked",
    user="uid",
    item="iid",
    timestamp="ts",
    categorical=["device"],
    numerical=[
        {"name": "price", "direction": -1, "transform": "log1p", "count": True},
        {"name": "rating", "direction": +1},
        {"name": "tied", "direction": 0},
        {"name": "zeros", "direction": 0, "count": True},
        {"name": "few", "direction": 0},
    ],
)
CFG = FeatureConfig(n_buckets=8, min_category_count=2, outlier_quantile=0.01)


def _train(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = rng.exponential(20.0, n)
    price[rng.random(n) < 0.05] = np.nan
    price[:3] = [np.inf, -np.inf, 1e12]
    return pd.DataFrame(
        {
            "user": rng.integers(0, 50, n),
            "item": rng.integers(0, 80, n),
            LABEL_COLUMN: rng.integers(0, 2, n).astype(np.int8),
            TIME_COLUMN: np.arange(n, dtype=np.int64),
            "device": rng.choice(["ios", "android", "web"], n),
            "price": price,
            "rating": rng.normal(3.0, 1.0, n),
            "tied": np.round(rng.normal(0.0, 1.0, n), 1),  # many ties: quantile edges collapse
            "zeros": np.where(rng.random(n) < 0.9, 0.0, rng.integers(1, 5, n)).astype(float),  # greedy edges
            "few": rng.integers(0, 5, n).astype(float),  # at most n_buckets distinct
            GROUP_COLUMN: rng.integers(0, 50, n),
        }
    )


def _assert_same_spec(a, b, rtol: float = 1e-9) -> None:
    assert a.categorical == b.categorical
    for x, y in zip(a.numerical, b.numerical, strict=True):
        assert x.boundaries == y.boundaries and x.centres == y.centres and x.quantiles == y.quantiles, x.name
        np.testing.assert_allclose([x.mean, x.std], [y.mean, y.std], rtol=rtol, err_msg=x.name)


def test_fit_from_value_counts_equals_the_sorted_column_and_pandas(monkeypatch):
    import ibis

    train = _train()
    in_memory = transformer.fit_feature_spec(ibis.memtable(train), SCHEMA, CFG)
    monkeypatch.setattr(order_statistics, "VALUE_COUNTS_IN_MEMORY", 0)  # every feature sorted by the engine
    sorted_on_engine = transformer.fit_feature_spec(ibis.memtable(train), SCHEMA, CFG)
    _assert_same_spec(in_memory, sorted_on_engine)
    _assert_same_spec(in_memory, reference.fit_feature_spec(train, SCHEMA, CFG))


def test_value_counts_fall_back_past_the_limit():
    import ibis

    finite = order_statistics.finite_values(ibis.memtable(pd.DataFrame({"v": np.arange(10.0)})), "v")
    assert order_statistics.ValueCounts.fetch(finite, 9) is None
    counts = order_statistics.ValueCounts.fetch(finite, 10)
    assert counts is not None and counts.n == 10 and counts.at(np.array([0, 9])).tolist() == [0.0, 9.0]


@pytest.mark.parametrize("seed", range(3))
def test_count_below_inferred_from_known_positions_equals_a_scan(seed):
    import ibis

    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, 1, 500), np.repeat(rng.normal(0, 1, 5), 40)])
    finite = order_statistics.finite_values(ibis.memtable(pd.DataFrame({"v": values})), "v")
    with order_statistics.SortedColumn(finite) as column:
        levels = np.linspace(0, 1, 33)
        column.prefetch(levels)
        edges = np.concatenate(
            [order_statistics.quantiles(column, levels), column.at(np.arange(0, column.n, 37)), [-9.0, 9.0]]
        )
        expected = np.array([(values < e).sum() for e in edges])
        np.testing.assert_array_equal(column.count_below(edges), expected)


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
@pytest.mark.parametrize("distinct", [1, 3, 50, 10_000])
def test_split_cut_points_by_selection_equal_the_sorted_window(n, distinct):
    import ibis

    rng = np.random.default_rng(n * distinct)
    table = ibis.memtable(pd.DataFrame({TIME_COLUMN: rng.integers(0, distinct, n).astype(np.int64)}))
    for positions in [(0, n - 1), (n // 2, (3 * n) // 4), ((7 * n) // 10, (85 * n) // 100)]:
        positions = (min(positions[0], n - 1), min(positions[1], n - 1))
        by_selection = splitting._values_at(table, n, positions)
        by_window = tuple(splitting._value_at(table, p) for p in positions)
        assert by_selection == by_window


@pytest.mark.parametrize("unit", ["ms", "s"])
@pytest.mark.parametrize(
    "raw",
    [
        pd.Series([1_649_581_149_287, 0, -7, 2**53 + 1], dtype="int64"),
        pd.Series([1_649, None, 7], dtype="Int32"),
        pd.Series([65_000, 0], dtype="uint16"),
    ],
)
def test_integer_epochs_by_casts_equal_the_parser(unit, raw):
    import ibis

    table = ibis.memtable(pd.DataFrame({"t": raw}))
    got = table.select(ms=epoch_ms(table["t"], unit), whole=to_epoch_ms(table["t"], unit)).to_pandas()
    expected = parse(raw.astype("object").where(raw.notna(), None), unit)
    np.testing.assert_array_equal(got["ms"].to_numpy(np.float64), expected.to_numpy(np.float64))
    present = expected.notna().to_numpy()
    whole = got["whole"].to_numpy(np.float64)[present].astype(np.int64)
    np.testing.assert_array_equal(whole, np.rint(expected.to_numpy()[present]).astype(np.int64))


@pytest.mark.parametrize(
    ("values", "vocabulary", "codes"),
    [
        (pd.Series([5, 7, -3, 5, 9], dtype="int64"), ["5", "-3", "7"], [1, 3, 2, 1, 0]),
        (pd.Series([5, 7, None, 5, 9], dtype="Int32"), ["5", "7"], [1, 2, 0, 1, 0]),
        (pd.Series([5, 7, 8], dtype="uint64"), ["5", "7"], [1, 2, 0]),
        (pd.Series([5, 7, 8], dtype="int64"), ["a", "7"], [0, 2, 0]),  # a text vocabulary: joined as text
        (pd.Series(["5", "x", None], dtype=object), ["x", "5"], [2, 1, 0]),
    ],
)
def test_vocabulary_codes_on_integers_equal_codes_on_text(values, vocabulary, codes):
    import ibis

    from ccss_pipeline.spec import FeatureSpec

    n = len(values)
    frame = pd.DataFrame(
        {"ident": values, LABEL_COLUMN: np.zeros(n, np.int8), GROUP_COLUMN: np.zeros(n, np.int64)}
    ).assign(**{TIME_COLUMN: np.arange(n, dtype=np.int64), "row": np.arange(n, dtype=np.int64)})
    feature = CategoricalFeature(name="ident", vocab_size=len(vocabulary) + 1, vocabulary=vocabulary)
    spec = FeatureSpec(categorical=[feature], numerical=[], has_oracle=False)
    out = encoding.to_model_input(ibis.memtable(frame), spec).to_pandas()
    assert out[feature.column].tolist() == codes


@pytest.mark.spark
def test_spark_fits_the_sorted_column_as_duckdb_and_reads_duckdb_parquet(spark_session, tmp_path, monkeypatch):  # noqa: F811
    """Spark takes the same shortcuts (the fit's (value, count) tables and inferred counts below an
    edge), and reads the parquet format 2 DuckDB writes."""
    import ibis

    from ccss_pipeline.datasets.tables import EngineTableDataset

    train = _train()
    path = tmp_path / "train.parquet"
    EngineTableDataset(str(path)).save(ibis.memtable(train))  # DuckDB, parquet format 2
    on_spark = ibis.pyspark.connect(spark_session).read_parquet(str(path))
    pd.testing.assert_frame_equal(on_spark.to_pandas(), train, check_dtype=False)
    on_duckdb = transformer.fit_feature_spec(ibis.duckdb.connect().read_parquet(str(path)), SCHEMA, CFG)
    _assert_same_spec(transformer.fit_feature_spec(on_spark, SCHEMA, CFG), on_duckdb)
    monkeypatch.setattr(order_statistics, "VALUE_COUNTS_IN_MEMORY", 0)
    _assert_same_spec(transformer.fit_feature_spec(on_spark, SCHEMA, CFG), on_duckdb)
