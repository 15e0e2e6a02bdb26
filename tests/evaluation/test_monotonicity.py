from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.evaluation.monotonicity import (
    PER_FEATURE_COLUMNS,
    ice_matrix,
    monotonicity_report,
    true_direction_agreement,
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def monotone_scorer(cat, dense, bucket):
    """Increasing in feature 0, decreasing in feature 1, anything in feature 2."""
    assert cat.dtype == np.int64 and dense.dtype == np.float32 and bucket.dtype == np.int64
    return _sigmoid(dense[:, 0] - dense[:, 1] + 0.5 * np.sin(3 * dense[:, 2]) + 0.1 * cat[:, 0])


DIP_TABLE = np.array([0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.55, 0.70])  # dip between bucket 5 and 6


def make_dip_scorer(max_batch=None):
    def scorer(cat, dense, bucket):
        if max_batch is not None:
            assert len(dense) <= max_batch
        b0 = np.minimum(bucket[:, 0], 7)  # missing bucket (8) scored as bucket 7; those rows are skipped anyway
        return DIP_TABLE[b0] * (1.0 - 0.2 * (bucket[:, 1] / 7.0))  # decreasing in feature 1: compliant

    return scorer


def _row(res, name):
    return res.per_feature.set_index("feature").loc[name]


def test_monotone_scorer_has_no_violations(spec, inputs):
    res = monotonicity_report(monotone_scorer, inputs, spec)
    assert list(res.per_feature.columns) == PER_FEATURE_COLUMNS
    assert list(res.per_feature["feature"]) == ["up_feat", "down_feat"]  # directed only
    assert (res.per_feature["violation_rate"] == 0).all()
    assert (res.per_feature["compliance"] == 1).all()
    assert (res.per_feature["ice_monotone_share"] == 1).all()
    assert (res.per_feature["mean_violating_mass"] == 0).all()
    assert res.per_feature["pd_direction_ok"].all()
    assert _row(res, "up_feat")["pd_spearman"] == pytest.approx(1.0)
    assert _row(res, "down_feat")["pd_spearman"] == pytest.approx(-1.0)
    assert res.pooled["violation_rate"] == 0 and res.pooled["rows_with_violation"] == 0
    assert res.pooled["pd_direction_ok_share"] == 1.0


def test_known_dip_gives_exact_violation_share(spec, inputs):
    res = monotonicity_report(make_dip_scorer(), inputs, spec)
    b = inputs.bucket[:, 0]
    counts = np.bincount(b, minlength=9)[:8]  # bucket 8 = missing, skipped
    n_eval = counts.sum()
    n_pairs = 2 * n_eval - counts[0] - counts[7]  # interior rows have 2 neighbours, edge rows 1
    n_viol = counts[5] + counts[6]  # bucket 5 -> up move to 6 drops; bucket 6 <- down from 5 is higher
    row = _row(res, "up_feat")
    assert row["n_rows"] == n_eval < len(inputs)
    assert row["n_pairs"] == n_pairs
    assert row["n_violations"] == n_viol
    assert row["violation_rate"] == pytest.approx(n_viol / n_pairs)
    assert row["compliance"] == pytest.approx(1 - n_viol / n_pairs)
    assert row["rows_with_violation"] == pytest.approx(n_viol / n_eval)
    # every ICE curve contains the dip (row factor scales it): none monotone, mass = mean of 0.05*factor
    assert row["ice_monotone_share"] == 0.0
    factor = 1.0 - 0.2 * inputs.bucket[:, 1] / 7.0
    assert row["mean_violating_mass"] == pytest.approx(0.05 * factor.mean())
    assert row["pd_direction_ok"]  # the PD curve still rises overall
    # the -1 feature is compliant
    down = _row(res, "down_feat")
    assert down["violation_rate"] == 0 and down["ice_monotone_share"] == 1.0
    # pooled = total violating pairs / total pairs
    assert res.pooled["n_violations"] == n_viol
    assert res.pooled["violation_rate"] == pytest.approx(n_viol / (n_pairs + down["n_pairs"]))
    assert res.pooled["rows_with_violation"] == pytest.approx(n_viol / len(inputs))


def test_direction_minus_one_flags_increasing(spec, inputs):
    def scorer(cat, dense, bucket):  # increasing in feature 1, whose declared direction is -1
        return 0.1 + 0.05 * bucket[:, 1]

    res = monotonicity_report(scorer, inputs, spec)
    down = _row(res, "down_feat")
    assert down["violation_rate"] == 1.0 and down["compliance"] == 0.0
    assert down["ice_monotone_share"] == 0.0
    assert down["mean_violating_mass"] == pytest.approx(0.05 * 7)
    assert down["pd_spearman"] == pytest.approx(1.0) and not down["pd_direction_ok"]
    up = _row(res, "up_feat")  # constant in feature 0: no violation (within eps), PD flat
    assert up["violation_rate"] == 0 and up["ice_monotone_share"] == 1.0
    assert np.isnan(up["pd_spearman"]) and not up["pd_direction_ok"]


def test_eps_tolerates_tiny_wiggles(spec, inputs):
    def scorer(cat, dense, bucket):  # decreasing by 1e-8 per bucket on a +1 feature
        return 0.5 - 1e-8 * bucket[:, 0]

    assert _row(monotonicity_report(scorer, inputs, spec), "up_feat")["violation_rate"] == 0
    assert _row(monotonicity_report(scorer, inputs, spec, eps=0.0), "up_feat")["violation_rate"] == 1.0


def test_fx_uses_actual_dense_value_not_centre(spec, inputs):
    """f(x) is the row as it is: in-bucket offsets from the centre count, moved values sit on centres."""
    centres = np.asarray(spec.numerical[0].centres_dense, dtype=np.float32)

    def make(coef):
        def scorer(cat, dense, bucket):
            b = np.minimum(bucket[:, 0], 7)
            return 0.1 + 0.1 * b + coef * (dense[:, 0] - centres[b])

        return scorer

    assert _row(monotonicity_report(make(0.0), inputs, spec), "up_feat")["violation_rate"] == 0
    # offset up to ±0.071 in dense units × 3 = ±0.21 > the 0.1 bucket step: some moves go the wrong way
    assert _row(monotonicity_report(make(3.0), inputs, spec), "up_feat")["violation_rate"] > 0.1


def test_chunking_and_subsampling(spec, inputs):
    full = monotonicity_report(make_dip_scorer(), inputs, spec)
    small = monotonicity_report(make_dip_scorer(max_batch=20), inputs, spec, chunk_rows=20)
    pd.testing.assert_frame_equal(full.per_feature, small.per_feature)
    pd.testing.assert_frame_equal(full.curves, small.curves)
    sub = monotonicity_report(make_dip_scorer(), inputs, spec, max_rows=50, seed=1)
    assert sub.pooled["n_rows"] == 50
    sub2 = monotonicity_report(make_dip_scorer(), inputs, spec, max_rows=50, seed=1)
    pd.testing.assert_frame_equal(sub.per_feature, sub2.per_feature)


def test_ice_matrix_moves_only_feature_k(spec, inputs):
    seen = []

    def scorer(cat, dense, bucket):
        seen.append((dense.copy(), bucket.copy()))
        return dense[:, 1].astype(np.float64)

    centres = np.asarray(spec.numerical[1].centres_dense)
    ice = ice_matrix(scorer, inputs.cat[:3], inputs.dense[:3], inputs.bucket[:3], 1, centres)
    np.testing.assert_allclose(ice, np.tile(centres.astype(np.float32), (3, 1)))
    dense, bucket = seen[0]
    np.testing.assert_array_equal(bucket[:, 1], np.tile(np.arange(8), 3))
    np.testing.assert_array_equal(dense[:, 0], np.repeat(inputs.dense[:3, 0], 8))
    np.testing.assert_array_equal(bucket[:, 2], np.repeat(inputs.bucket[:3, 2], 8))


def test_curves_table(spec, inputs):
    res = monotonicity_report(make_dip_scorer(), inputs, spec)
    up = res.curves[res.curves["feature"] == "up_feat"].sort_values("bucket")
    assert len(up) == 8
    np.testing.assert_allclose(up["centre"], spec.numerical[0].centres)
    factor = (1.0 - 0.2 * inputs.bucket[:, 1] / 7.0).mean()
    np.testing.assert_allclose(up["mean"], DIP_TABLE * factor)
    assert (up["q10"] <= up["mean"]).all() and (up["mean"] <= up["q90"]).all()
    assert set(res.curves["feature"]) == {"up_feat", "down_feat"}
    flat = res.metrics()
    assert flat["up_feat/n_violations"] == res.per_feature["n_violations"].iloc[0]
    assert "pooled/violation_rate" in flat


def test_true_direction_agreement(spec, inputs):
    res = monotonicity_report(monotone_scorer, inputs, spec)
    agree = true_direction_agreement(res.curves, {"up_feat": 1, "down_feat": 1, "absent": -1})
    assert list(agree["feature"]) == ["up_feat", "down_feat"]
    assert list(agree["agrees"]) == [True, False]
    assert agree["agrees"].mean() == 0.5
