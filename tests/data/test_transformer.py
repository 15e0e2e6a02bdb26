"""The train-only transformer: buckets, centres, scaling, vocabularies, and encoding of any split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import FeatureConfig, LogFeature, SchemaConfig
from ccss_pipeline.data.transformer import categorical_columns
from ccss_pipeline.encoding import DENSE_CLIP, apply_transform, encode_categorical, encode_numerical
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, TIME_COLUMN, FeatureSpec, ModelInputs
from tests.support.frame_stages import fit_feature_spec, to_model_input

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
        {"name": "flat", "direction": 0},
    ],
    log_features=[LogFeature(name="prior", entity="item", stat="impressions", direction=0)],
)
CFG = FeatureConfig(n_buckets=4, min_category_count=2)


def _split(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": rng.integers(0, 10, n),
            "item": rng.integers(0, 30, n),
            LABEL_COLUMN: rng.integers(0, 2, n).astype(np.int8),
            TIME_COLUMN: np.arange(n, dtype=np.int64),
            "device": rng.choice(["ios", "android", "web"], n),
            "price": rng.exponential(20.0, n),
            "rating": rng.normal(3.0, 1.0, n),
            "flat": np.full(n, 7.0),
            "prior": rng.integers(0, 50, n).astype(float),
            GROUP_COLUMN: rng.integers(0, 10, n),
            ORACLE_COLUMN: rng.random(n),
        }
    )


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _split(400, 0)


@pytest.fixture(scope="module")
def spec(train) -> FeatureSpec:
    return fit_feature_spec(train, SCHEMA, CFG)


def test_spec_layout_and_directions(spec):
    assert [c.name for c in spec.categorical] == ["user", "item", "device"] == categorical_columns(SCHEMA)
    assert [n.name for n in spec.numerical] == ["price", "rating", "flat", "prior"]
    assert [n.direction for n in spec.numerical] == [-1, 1, 0, 0]
    assert [n.name for n in spec.directed] == ["price", "rating"]
    assert spec.directed_indices() == [0, 1]
    assert spec.has_oracle and spec.source == "table"
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_fit_uses_train_only(train):
    """Changing validation / test values (never passed to the fit) cannot change it; changing train does."""
    spec_a = fit_feature_spec(train, SCHEMA, CFG)
    valid = _split(100, 1)
    to_model_input(valid, spec_a)
    valid["price"] *= 1000
    valid["device"] = "brand-new"
    to_model_input(valid, spec_a)
    assert fit_feature_spec(train, SCHEMA, CFG) == spec_a
    moved = train.assign(price=train["price"] * 2)
    assert fit_feature_spec(moved, SCHEMA, CFG) != spec_a


def test_buckets_from_quantile_boundaries_and_median_centres(spec, train):
    price = spec.numerical[0]
    values = train["price"].to_numpy()
    assert len(price.boundaries) == CFG.n_buckets - 1
    np.testing.assert_allclose(price.boundaries, np.quantile(values, [0.25, 0.5, 0.75]))
    _, bucket = encode_numerical(values, price)
    assert bucket.min() == 0 and bucket.max() == CFG.n_buckets - 1
    assert np.all(np.bincount(bucket) >= 95)  # equal-frequency
    for b in range(CFG.n_buckets):
        assert price.centres[b] == pytest.approx(np.median(values[bucket == b]))
    # centres are inside their buckets, and encode back to them
    _, centre_bucket = encode_numerical(np.array(price.centres), price)
    assert centre_bucket.tolist() == list(range(CFG.n_buckets))
    dense_centres, _ = encode_numerical(np.array(price.centres), price)
    np.testing.assert_allclose(dense_centres, price.centres_dense, rtol=1e-5, atol=1e-6)


def test_dense_is_standardized_transform(spec, train):
    """Standardized on the transform winsorized at (q, 1 - q) (``outlier_quantile``): ~mean 0, std 1."""
    price = spec.numerical[0]
    t = np.log1p(train["price"].to_numpy())
    lo, hi = np.quantile(t, [CFG.outlier_quantile, 1 - CFG.outlier_quantile])
    w = np.clip(t, lo, hi)
    assert price.mean == pytest.approx(w.mean()) and price.std == pytest.approx(w.std())
    dense, _ = encode_numerical(train["price"].to_numpy(), price)
    assert abs(float(dense.mean())) < 1e-2 and float(dense.std()) == pytest.approx(1.0, rel=1e-2)
    assert dense.dtype == np.float32


def test_missing_values_go_to_missing_bucket_with_dense_zero(spec):
    rating = spec.numerical[1]
    dense, bucket = encode_numerical(np.array([np.nan, np.inf, -np.inf, 3.0]), rating)
    assert bucket[:3].tolist() == [rating.missing_bucket] * 3 == [CFG.n_buckets] * 3
    assert dense[:3].tolist() == [0.0, 0.0, 0.0]
    assert bucket[3] < rating.missing_bucket


def test_extreme_values_clipped_and_finite(spec):
    for feat in spec.numerical[:2]:
        dense, bucket = encode_numerical(np.array([1e12, -1e12, 1e300]), feat)
        assert np.all(np.isfinite(dense))
        assert dense.max() <= DENSE_CLIP and dense.min() >= -DENSE_CLIP
        assert dense[0] == pytest.approx(DENSE_CLIP)
        assert bucket[0] == feat.n_buckets - 1 and bucket[1] == 0


def test_single_value_feature_gets_one_bucket(spec):
    flat = spec.numerical[2]
    assert flat.boundaries == [] and flat.centres == [7.0] and flat.n_buckets == 1
    assert flat.std == 1.0  # no division by zero
    dense, bucket = encode_numerical(np.array([7.0, 100.0, np.nan]), flat)
    assert bucket.tolist() == [0, 0, 1]
    assert np.all(np.isfinite(dense)) and dense[0] == 0.0


def test_no_finite_training_value_is_an_error(train):
    with pytest.raises(ValueError, match="rating"):
        fit_feature_spec(train.assign(rating=np.nan), SCHEMA, CFG)


def test_vocabulary_min_count_and_deterministic_tie_order():
    values = pd.Series(["b", "a", "c", "a", "b", "d", "c", "e", "e", "e", None])
    train = _split(len(values), 0).assign(device=values)
    spec = fit_feature_spec(train, SCHEMA, CFG)
    device = spec.categorical[2]
    # counts: e=3, a=b=c=2 (ties by value), d=1 dropped (min_count 2), None ignored
    assert device.vocabulary == ["e", "a", "b", "c"] and device.vocab_size == 5
    shuffled = train.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert fit_feature_spec(shuffled, SCHEMA, CFG).categorical[2] == device


def test_unseen_and_missing_categories_map_to_zero():
    from ccss_pipeline.spec import CategoricalFeature

    feat = CategoricalFeature("device", 3, ["ios", "web"])
    codes = encode_categorical(pd.Series(["web", "ios", "tv", None, np.nan]), feat)
    assert codes.tolist() == [2, 1, 0, 0, 0]
    # integer ids are matched through their string form
    ids = CategoricalFeature("item", 3, ["7", "12"])
    assert encode_categorical(pd.Series([12, 7, 99]), ids).tolist() == [2, 1, 0]


def test_to_model_input_columns_and_round_trip(spec):
    frame = _split(50, 5)
    frame.loc[0, "price"] = np.nan
    out = to_model_input(frame, spec)
    expected = [
        LABEL_COLUMN,
        GROUP_COLUMN,
        TIME_COLUMN,
        "cat__user",
        "cat__item",
        "cat__device",
        *[c for n in spec.numerical for c in (n.dense_column, n.bucket_column)],
        ORACLE_COLUMN,
    ]
    assert list(out.columns) == expected
    assert out[LABEL_COLUMN].dtype == np.int8 and out["cat__item"].dtype == np.int64
    assert out["bkt__price"].iloc[0] == spec.numerical[0].missing_bucket and out["num__price"].iloc[0] == 0.0
    for num in spec.numerical:
        assert out[num.bucket_column].between(0, num.missing_bucket).all()
    inputs = ModelInputs.from_frame(out, spec)
    assert inputs.dense.shape == (50, 4) and inputs.cat.shape == (50, 3) and inputs.oracle is not None


def test_apply_transform_symmetric_log1p():
    np.testing.assert_allclose(apply_transform(np.array([-3.0, 0.0, 3.0]), "log1p"), [-np.log(4), 0, np.log(4)])
    np.testing.assert_array_equal(apply_transform(np.array([-3.0, 2.0]), "identity"), [-3.0, 2.0])


def test_zero_inflated_count_has_no_empty_training_bucket():
    """A count with a point mass at its minimum (many zeros, as fans/follows counts): every bucket of the
    fitted spec must hold training rows; a boundary equal to the minimum would leave bucket 0 empty."""
    rng = np.random.default_rng(4)
    values = np.where(rng.random(400) < 0.6, 0.0, rng.exponential(10.0, 400))
    train = _split(400, 0).assign(price=values)
    price = fit_feature_spec(train, SCHEMA, CFG).numerical[0]
    _, bucket = encode_numerical(values, price)
    assert np.bincount(bucket, minlength=price.n_buckets).min() > 0
    assert price.centres[0] == 0.0  # the zeros' bucket is centred on 0
