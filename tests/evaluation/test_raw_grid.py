"""Raw-grid ICE and edge test on hand-built specs and numpy scorers with hand-countable answers.

Every directed feature here has the sketch 0..4 (linear) and inner edges 1.25, 2.25, 3.25, so the
9-level grid is 0, 0.5, ..., 4 with buckets 0,0,0,1,1,2,2,3,3: 8 steps per row, 3 crossing an edge
(1→1.5, 2→2.5, 3→3.5) and 5 inside a bucket. Identity transform, mean 0, std 1: dense == raw.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.evaluation.raw_grid import (
    CURVE_COLUMNS,
    LABEL_COLUMNS,
    RAW_GRID_COLUMNS,
    edge_values,
    raw_grid,
    raw_grid_report,
    sweep_matrix,
    wrong_step_share,
)
from ccss_pipeline.spec import QUANTILE_LEVELS, CategoricalFeature, FeatureSpec, ModelInputs, NumericalFeature

EDGES = [1.25, 2.25, 3.25]
N = 40
LEVELS = 9


def feat(name, direction, boundaries=EDGES, quantiles=None, transform="identity"):
    edges = np.asarray(boundaries, dtype=float)
    lo, hi = (0.0, 4.0) if quantiles is None else (float(np.min(quantiles)), float(np.max(quantiles)))
    cuts = np.concatenate([[lo], edges, [hi]])
    centres = list((cuts[1:] + cuts[:-1]) / 2)
    q = np.linspace(0.0, 4.0, QUANTILE_LEVELS) if quantiles is None else np.asarray(quantiles, dtype=float)
    return NumericalFeature(name, direction, transform, 0.0, 1.0, list(edges), centres, centres, list(q))


def make_spec(*numerical):
    numerical = numerical or (feat("up", +1), feat("down", -1), feat("free", 0))
    return FeatureSpec(categorical=[CategoricalFeature("row", N + 1)], numerical=list(numerical))


def make_inputs(spec, n=N, seed=3, missing_first=0.2):
    """Consistent dense/bucket rows; ``cat[:, 0]`` is the row id; some rows miss feature 0."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.0, 4.0, size=(n, len(spec.numerical)))
    raw[rng.random(n) < missing_first, 0] = np.nan
    cols = [encode_numerical(raw[:, j], f) for j, f in enumerate(spec.numerical)]
    dense = np.stack([c[0] for c in cols], 1)
    bucket = np.stack([c[1] for c in cols], 1)
    cat = np.arange(n, dtype=np.int64)[:, None]
    return ModelInputs(cat, dense, bucket, (rng.random(n) < 0.3).astype(np.float32), np.arange(n))


def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def other(cat, dense):
    """Row-dependent background that does not depend on feature 0 or 1."""
    return 0.3 * np.sin(3.0 * dense[:, 2]) + 0.05 * (cat[:, 0] % 5)


def row(res, name):
    return res.per_feature.set_index("feature").loc[name]


@pytest.fixture
def spec():
    return make_spec()


@pytest.fixture
def inputs(spec):
    return make_inputs(spec)


# ---------------------------------------------------------------- grid and edges


def test_raw_grid_interpolates_sorts_and_deduplicates():
    f = feat("q", 1, boundaries=[1.5], quantiles=[0.0, 1.0, 2.0, 4.0, 8.0])  # levels 0, .25, .5, .75, 1
    np.testing.assert_allclose(raw_grid(f, 9), [0, 0.5, 1, 1.5, 2, 3, 4, 6, 8])
    np.testing.assert_allclose(raw_grid(f, 3), [0.0, 2.0, 8.0])
    assert raw_grid(f, 1).tolist() == [0.0]
    discrete = feat("disc", 1, boundaries=[1.0, 2.0], quantiles=[0.0] * 400 + [1.0] * 300 + [2.0] * 301)
    assert raw_grid(discrete, 5).tolist() == [0.0, 1.0, 2.0]  # levels land inside the runs
    g = raw_grid(discrete, 200)
    assert np.all(np.diff(g) > 0) and g[0] == 0.0 and g[-1] == 2.0 and len(g) < 200
    assert raw_grid(feat("up", 1), LEVELS).tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]


def test_raw_grid_empty_sketch_names_feature():
    f = NumericalFeature("nosketch", 1, "identity", 0.0, 1.0, [1.0], [0.5, 1.5], [0.5, 1.5])
    with pytest.raises(ValueError, match="nosketch"):
        raw_grid(f, 10)


@pytest.mark.parametrize("transform,edges", [("identity", EDGES), ("log1p", [10.0, 1000.0, 123456.7])])
def test_edge_values_move_bucket_not_dense(transform, edges):
    f = feat("e", 1, boundaries=edges, transform=transform)
    below, at = edge_values(f)
    assert np.all(below < at) and np.array_equal(at, np.asarray(edges))
    d_below, b_below = encode_numerical(below, f)
    d_at, b_at = encode_numerical(at, f)
    assert b_below.tolist() == list(range(len(edges)))
    assert b_at.tolist() == list(range(1, len(edges) + 1))
    np.testing.assert_allclose(d_below, d_at, atol=1e-6)


def test_sweep_matrix_handles_grid_longer_than_chunk(spec, inputs):
    seen = []

    def scorer(cat, dense, bucket):
        seen.append(len(dense))
        return dense[:, 0] * 10 + bucket[:, 0] + cat[:, 0] * 1000

    vals = np.arange(9, dtype=np.float32)
    out = sweep_matrix(scorer, inputs.cat, inputs.dense, inputs.bucket, 0, vals, np.arange(9), chunk_rows=4)
    expected = vals[None, :] * 10 + np.arange(9)[None, :] + np.arange(N)[:, None] * 1000
    np.testing.assert_array_equal(out, expected)
    assert max(seen) <= 4


# ---------------------------------------------------------------- hand-built scorers


def wrong_bucket_scorer(cat, dense, bucket):
    """Up: small positive dense slope, larger negative bucket effect (wrong sign); down: correct."""
    return sig(0.2 * dense[:, 0] - 0.5 * bucket[:, 0] - dense[:, 1] - 0.1 * bucket[:, 1] + other(cat, dense))


def test_wrong_signed_bucket_effect_shows_at_edges_and_crossings(spec, inputs):
    res = raw_grid_report(wrong_bucket_scorer, inputs, spec, levels=LEVELS)
    up, down = row(res, "up"), row(res, "down")
    assert list(res.per_feature["feature"]) == ["up", "down"]
    assert (up.n_rows, up.n_levels, up.n_steps) == (N, 9, 8 * N)
    assert (up.n_steps_inside, up.n_steps_crossing, up.n_wrong_steps) == (5 * N, 3 * N, 3 * N)
    assert up.wrong_step_share == pytest.approx(3 / 8)
    assert up.wrong_step_share_inside == 0.0 and up.wrong_step_share_crossing == 1.0
    assert up.monotone_row_share == 0.0
    assert (up.edge_pairs, up.edge_wrong, up.edge_wrong_share) == (3 * N, 3 * N, 1.0)
    assert down.wrong_step_share == 0.0 and down.edge_wrong_share == 0.0 and down.monotone_row_share == 1.0
    p = res.pooled
    assert p["wrong_step_share"] == pytest.approx(3 / 16)
    assert p["wrong_step_share_inside"] == 0.0 and p["wrong_step_share_crossing"] == pytest.approx(0.5)
    assert p["edge_wrong_share"] == pytest.approx(0.5) and p["edge_pairs"] == 6 * N
    assert p["monotone_row_share"] == 0.0 and p["max_feature_wrong_step_share"] == pytest.approx(3 / 8)
    assert (p["n_features"], p["n_rows"], p["n_steps"], p["levels"], p["n_levels"]) == (2, N, 16 * N, 9, 9.0)


def test_linear_scorer_exact_mass_and_curves(spec, inputs):
    def scorer(cat, dense, bucket):  # depends on the up feature only: identical ICE rows
        return 0.5 + 0.01 * dense[:, 0] - 0.05 * bucket[:, 0]

    res = raw_grid_report(scorer, inputs, spec, levels=LEVELS)
    up = row(res, "up")
    assert up.mean_wrong_mass == pytest.approx(3 * 0.045, rel=1e-5)  # three crossings of 0.005 - 0.05
    assert row(res, "down").mean_wrong_mass == 0.0
    assert res.pooled["mean_wrong_mass"] == pytest.approx(3 * 0.045 / 2, rel=1e-5)
    c = res.curves[res.curves["feature"] == "up"]
    assert list(res.curves.columns) == CURVE_COLUMNS and len(res.curves) == 2 * LEVELS
    assert c["bucket"].tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert c["crosses_edge"].tolist() == [False, False, False, True, False, True, False, True, False]
    expected = 0.5 + 0.01 * c["value"] - 0.05 * c["bucket"]
    np.testing.assert_allclose(c["mean"], expected, rtol=1e-6)
    np.testing.assert_allclose(c["q10"], expected, rtol=1e-6)
    np.testing.assert_allclose(c["q90"], expected, rtol=1e-6)


def test_monotone_in_both_paths_gives_zero(spec, inputs):
    def scorer(cat, dense, bucket):
        return sig(dense[:, 0] + 0.1 * bucket[:, 0] - dense[:, 1] - 0.1 * bucket[:, 1] + other(cat, dense))

    res = raw_grid_report(scorer, inputs, spec, levels=LEVELS)
    for col in ("wrong_step_share", "wrong_step_share_inside", "wrong_step_share_crossing", "edge_wrong_share"):
        assert (res.per_feature[col] == 0.0).all(), col
        assert res.pooled[col] == 0.0
    assert (res.per_feature["monotone_row_share"] == 1.0).all() and res.pooled["monotone_row_share"] == 1.0
    assert res.pooled["mean_wrong_mass"] == 0.0
    c = res.curves[res.curves["feature"] == "down"]
    assert np.all(np.diff(c["mean"]) < 0) and np.all(c["q10"] <= c["mean"]) and np.all(c["mean"] <= c["q90"])


def test_decreasing_feature_uses_the_sign(spec, inputs):
    def rising(cat, dense, bucket):  # rises in both features: right for up, wrong everywhere for down
        return sig(dense[:, 0] + dense[:, 1] + 0.1 * bucket[:, 1] + other(cat, dense))

    res = raw_grid_report(rising, inputs, spec, levels=LEVELS)
    assert row(res, "up").wrong_step_share == 0.0
    down = row(res, "down")
    assert (down.wrong_step_share, down.monotone_row_share, down.edge_wrong_share) == (1.0, 0.0, 1.0)

    def down_bucket_wrong(cat, dense, bucket):  # down: falls in dense, rises with the bucket id
        return sig(-0.2 * dense[:, 1] + 0.5 * bucket[:, 1] + dense[:, 0] + other(cat, dense))

    down = row(raw_grid_report(down_bucket_wrong, inputs, spec, levels=LEVELS), "down")
    assert down.wrong_step_share == pytest.approx(3 / 8) and down.wrong_step_share_inside == 0.0
    assert (down.wrong_step_share_crossing, down.edge_wrong_share) == (1.0, 1.0)


def test_non_monotone_inside_bucket(spec, inputs):
    def scorer(cat, dense, bucket):  # sin(pi x / 2) on 0..4: falls from x=1 to x=3; no bucket path
        return 0.5 + 0.2 * np.sin(np.pi * dense[:, 0] / 2) + 0.01 * (cat[:, 0] % 3)

    up = row(raw_grid_report(scorer, inputs, spec, levels=LEVELS), "up")
    # wrong steps: 1→1.5 (crossing), 1.5→2 (inside), 2→2.5 (crossing), 2.5→3 (inside)
    assert up.n_wrong_steps == 4 * N and up.wrong_step_share == pytest.approx(0.5)
    assert up.wrong_step_share_inside == pytest.approx(2 / 5)
    assert up.wrong_step_share_crossing == pytest.approx(2 / 3)
    assert up.edge_wrong_share == 0.0  # dense does not move at an edge and the bucket is ignored
    assert up.mean_wrong_mass == pytest.approx(0.4, rel=1e-5)  # falls from 0.7 to 0.3


# ---------------------------------------------------------------- sampling, chunks, eps, edge cases


def recording(scorer, log):
    def wrapped(cat, dense, bucket):
        log.append((len(dense), set(cat[:, 0].tolist())))
        return scorer(cat, dense, bucket)

    return wrapped


def test_sampling_is_seeded_and_without_replacement(spec, inputs):
    log = []
    a = raw_grid_report(recording(wrong_bucket_scorer, log), inputs, spec, levels=LEVELS, rows=15, seed=5)
    seen = set().union(*(s for _, s in log))
    assert seen == set(np.random.default_rng(5).choice(N, size=15, replace=False).tolist())
    assert a.pooled["n_rows"] == 15 and (a.per_feature["n_rows"] == 15).all()
    b = raw_grid_report(wrong_bucket_scorer, inputs, spec, levels=LEVELS, rows=15, seed=5)
    pd.testing.assert_frame_equal(a.per_feature, b.per_feature)
    pd.testing.assert_frame_equal(a.curves, b.curves)
    assert raw_grid_report(wrong_bucket_scorer, inputs, spec, levels=LEVELS, rows=10_000).pooled["n_rows"] == N


def test_small_chunks_give_identical_results(spec, inputs):
    log = []
    small = raw_grid_report(recording(wrong_bucket_scorer, log), inputs, spec, levels=20, chunk_rows=7)
    big = raw_grid_report(wrong_bucket_scorer, inputs, spec, levels=20)
    assert max(n for n, _ in log) <= 7
    pd.testing.assert_frame_equal(small.per_feature, big.per_feature)
    pd.testing.assert_frame_equal(small.curves, big.curves)
    assert small.pooled == big.pooled


def test_eps_ignores_tiny_wrong_steps(spec, inputs):
    def scorer(cat, dense, bucket):  # falls by 5e-9 per up step: wrong, but far below eps
        return 0.5 - 1e-8 * dense[:, 0].astype(np.float64)

    loose = raw_grid_report(scorer, inputs, spec, levels=LEVELS, eps=1e-6)
    assert loose.pooled["wrong_step_share"] == 0.0 and loose.pooled["monotone_row_share"] == 1.0
    assert row(loose, "up").mean_wrong_mass == pytest.approx(4e-8, rel=1e-3)  # mass is not thresholded
    strict = raw_grid_report(scorer, inputs, spec, levels=LEVELS, eps=0.0)
    assert row(strict, "up").wrong_step_share == 1.0 and row(strict, "down").wrong_step_share == 0.0
    assert strict.pooled["edge_wrong_share"] == 0.0  # equal predictions are never wrong, even at eps=0
    assert wrong_step_share(scorer, inputs, spec, levels=LEVELS, eps=0.0) == pytest.approx(0.5)


def test_missing_rows_are_swept_like_any_other(spec):
    def scorer(cat, dense, bucket):
        return sig(0.2 * dense[:, 0] - 0.5 * bucket[:, 0])

    none_missing = make_inputs(spec, missing_first=0.0)
    all_missing = make_inputs(spec, missing_first=1.0)
    assert (all_missing.bucket[:, 0] == spec.numerical[0].missing_bucket).all()
    a = raw_grid_report(scorer, none_missing, spec, levels=LEVELS)
    b = raw_grid_report(scorer, all_missing, spec, levels=LEVELS)
    pd.testing.assert_series_equal(row(a, "up"), row(b, "up"))
    assert row(b, "up").wrong_step_share_crossing == 1.0


def test_single_value_grid_and_no_directed_features(inputs):
    const = feat("const", +1, boundaries=[], quantiles=[2.0] * QUANTILE_LEVELS)
    spec = make_spec(const, feat("free1", 0), feat("free2", 0))
    res = raw_grid_report(wrong_bucket_scorer, inputs, spec, levels=50)
    c = row(res, "const")
    assert (c.n_levels, c.n_steps, c.edge_pairs, c.monotone_row_share) == (1, 0, 0, 1.0)
    assert math.isnan(c.wrong_step_share) and math.isnan(c.edge_wrong_share)
    assert math.isnan(res.pooled["wrong_step_share"]) and math.isnan(res.pooled["max_feature_wrong_step_share"])
    assert len(res.curves) == 1 and not res.curves["crosses_edge"].iloc[0]

    empty = raw_grid_report(wrong_bucket_scorer, inputs, make_spec(*(feat(n, 0) for n in "abc")))
    assert empty.per_feature.empty and list(empty.per_feature.columns) == RAW_GRID_COLUMNS
    assert empty.curves.empty and list(empty.curves.columns) == CURVE_COLUMNS
    assert empty.pooled["n_features"] == 0 and math.isnan(empty.pooled["wrong_step_share"])
    assert math.isnan(empty.pooled["monotone_row_share"]) and math.isnan(empty.pooled["edge_wrong_share"])
    assert set(empty.metrics()) == {f"pooled/{k}" for k in empty.pooled}


def test_metrics_flat_and_json_ready(spec, inputs):
    res = raw_grid_report(wrong_bucket_scorer, inputs, spec, levels=LEVELS, rows=20)
    m = res.metrics()
    expected = {f"pooled/{k}" for k in res.pooled} | {
        f"{f}/{c}" for f in ("up", "down") for c in RAW_GRID_COLUMNS if c not in ("feature", *LABEL_COLUMNS)
    }
    assert set(m) == expected
    assert all(type(v) in (int, float, bool) for v in m.values())
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    assert m["up/wrong_step_share_crossing"] == 1.0 and m["pooled/n_rows"] == 20
    assert res.params == {"levels": LEVELS, "rows": 20, "seed": 0, "eps": 1e-6, "chunk_rows": 262_144}
