"""Discrete features (counts, days) are measured on the values users can set, not on interpolated quantiles.

A sparse count (97% zeros, 0…20) fitted by the real transformer keeps its observed values in the spec;
the raw grid and the edge test use them, and the report's figure equals a sweep of every observed value
done here independently. The quantile grid of the same count skips the step where the scorer below goes
the wrong way, which is how the old grid flattered such models.
"""

from __future__ import annotations

import numpy as np
import pytest

from ccss_pipeline.config import FeatureConfig
from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.evaluation.raw_grid import edge_values, grid_kind, raw_grid, raw_grid_report
from ccss_pipeline.spec import FeatureSpec, ModelInputs
from tests.support.frame_stages import fit_feature_spec, to_model_input
from tests.support.sparse_counts import SPARSE_CFG, SPARSE_SCHEMA, as_split, sparse_count_table

DIP = (4.0, 5.0)  # the scorer below goes the wrong way between these two counts


@pytest.fixture(scope="module")
def fitted() -> tuple[FeatureSpec, ModelInputs]:
    split = as_split(sparse_count_table(n=6000, seed=0))
    spec = fit_feature_spec(split, SPARSE_SCHEMA, SPARSE_CFG)
    return spec, ModelInputs.from_frame(to_model_input(split, spec), spec)


def _quantile_grid(feature, levels: int) -> np.ndarray:
    q = np.asarray(feature.quantiles)
    return np.unique(np.interp(np.linspace(0, 1, levels), np.linspace(0, 1, q.size), q))


def _raw_of(dense: np.ndarray, feature) -> np.ndarray:
    """Back from the dense input to the raw count (identity transform, inside the clip)."""
    return dense.astype(np.float64) * feature.std + feature.mean


def _dip_scorer(spec: FeatureSpec, k: int):
    """Increasing in count k everywhere except from DIP[0] to DIP[1], where it falls; over any longer
    step (4 → 7, say) it still rises."""
    feature = spec.numerical[k]

    def scorer(cat, dense, bucket):
        raw = np.round(_raw_of(dense[:, k], feature), 6)
        z = 0.1 * raw - 0.15 * (raw >= DIP[1]) + 0.01 * cat[:, 0]
        return 1 / (1 + np.exp(-z))

    return scorer


def test_counts_keep_their_observed_values(fitted):
    spec, _ = fitted
    rare, visits, price = spec.numerical
    assert rare.is_discrete and visits.is_discrete and not price.is_discrete
    assert rare.support[0] == 0.0 and all(float(v).is_integer() for v in rare.support)
    assert np.array_equal(raw_grid(rare, 200), np.asarray(rare.support))
    assert (grid_kind(rare), grid_kind(price)) == ("observed values", "quantiles")
    # the interpolated quantile grid lands on a value no count takes and skips observed ones
    old = _quantile_grid(rare, 200)
    assert any(not float(v).is_integer() for v in old)
    assert set(rare.support) - set(old)
    assert sum(rare.bucket_counts) == len(fitted[1])


def test_discrete_edge_test_steps_between_observed_values(fitted):
    spec, _ = fitted
    rare = spec.numerical[0]
    below, at = edge_values(rare)
    support = np.asarray(rare.support)
    assert np.isin(below, support).all() and np.isin(at, support).all()
    # each step joins two consecutive observed values, one per boundary they straddle
    assert np.array_equal(np.searchsorted(support, at), np.searchsorted(support, below) + 1)
    assert (encode_numerical(at, rare)[1] > encode_numerical(below, rare)[1]).all()


def test_continuous_edge_test_is_bucket_only(fitted):
    spec, _ = fitted
    price = spec.numerical[2]
    below, at = edge_values(price)
    assert np.array_equal(at, np.asarray(price.boundaries)) and (below < at).all()
    d_below, b_below = encode_numerical(below, price)
    d_at, b_at = encode_numerical(at, price)
    assert np.array_equal(d_below, d_at) and (b_at == b_below + 1).all()


def test_report_equals_a_sweep_of_every_observed_value(fitted):
    spec, inputs = fitted
    k = 0
    rare = spec.numerical[k]
    scorer = _dip_scorer(spec, k)
    result = raw_grid_report(scorer, inputs, spec, levels=200, rows=300, seed=1)
    row = result.per_feature.set_index("feature").loc[rare.name]
    # the independent sweep: every sampled row at every observed value, consecutive steps
    idx = np.sort(np.random.default_rng(1).choice(len(inputs), size=300, replace=False))
    sample = inputs.take(idx)
    values = np.asarray(rare.support)
    probs = []
    for v in values:
        dense, bucket = sample.dense.copy(), sample.bucket.copy()
        dense[:, k], bucket[:, k] = (a[0] for a in encode_numerical(np.array([v]), rare))
        probs.append(scorer(sample.cat, dense, bucket))
    wrong = (np.diff(np.stack(probs, 1), axis=1) < -1e-6).sum()
    assert row["grid"] == "observed values" and row["n_levels"] == len(rare.support)
    assert row["n_wrong_steps"] == wrong == 300  # exactly the 4 → 5 step, on every row
    assert row["wrong_step_share"] == pytest.approx(wrong / (300 * (len(rare.support) - 1)))
    assert row["edge_wrong"] == 300  # 4 and 5 sit in neighbouring buckets: the edge test sees the same step


def test_the_quantile_grid_would_have_missed_the_wrong_step(fitted):
    spec, inputs = fitted
    rare = spec.numerical[0]
    old = _quantile_grid(rare, 200)
    assert DIP[1] not in old  # 5 is skipped: the quantile grid jumps from 4 to ~7 and reads no wrong step
    continuous = FeatureConfig(**{**SPARSE_CFG.model_dump(), "discrete_max_values": 0})
    spec_old = fit_feature_spec(as_split(sparse_count_table(n=6000, seed=0)), SPARSE_SCHEMA, continuous)
    assert not any(f.is_discrete for f in spec_old.numerical)
    result = raw_grid_report(_dip_scorer(spec_old, 0), inputs, spec_old, levels=200, rows=300, seed=1)
    row = result.per_feature.set_index("feature").loc[rare.name]
    assert row["grid"] == "quantiles" and row["n_wrong_steps"] == 0


def test_per_edge_table_names_the_failing_edge_and_its_training_rows(fitted):
    spec, inputs = fitted
    rare = spec.numerical[0]
    result = raw_grid_report(_dip_scorer(spec, 0), inputs, spec, levels=200, rows=300, seed=1)
    edges = result.per_edge[result.per_edge["feature"] == rare.name]
    assert len(edges) == len(edge_values(rare)[0]) and edges["edge_wrong"].sum() == result.pooled["edge_wrong"]
    failing = edges[edges["edge_wrong"] > 0]
    assert failing[["below", "at", "edge_wrong_share"]].values.tolist() == [[4.0, 5.0, 1.0]]
    counts = np.asarray(rare.bucket_counts)
    assert (edges["train_rows_below"].to_numpy() == counts[edges["bucket_below"]]).all()
    assert (edges["train_rows_at"].to_numpy() == counts[edges["bucket_at"]]).all()
    assert set(result.per_edge["feature"]) == {f.name for f in spec.directed}

    row = result.per_feature.set_index("feature").loc[rare.name]
    assert row["worst_edge"] == "4 → 5" and row["worst_edge_wrong_share"] == 1.0
    failing_edge = edges.loc[failing.index[0]]
    assert row["worst_edge_train_rows"] == min(failing_edge["train_rows_below"], failing_edge["train_rows_at"])
