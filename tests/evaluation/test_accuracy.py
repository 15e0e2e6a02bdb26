from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from ccss_pipeline.evaluation.accuracy import (
    accuracy_metrics,
    calibration_data,
    gauc,
    group_auc_table,
    probability_scores,
    roc_curve_data,
)


def test_gauc_hand_computed():
    # user a: 4 rows, pos scores {0.9, 0.4}, neg {0.5, 0.1}: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> 3/4
    # user b: 2 rows, pos 0.3, neg 0.3 (tie) -> 0.5
    # user c: single class -> skipped
    label = [1, 1, 0, 0, 1, 0, 1, 1, 1]
    prob = [0.9, 0.4, 0.5, 0.1, 0.3, 0.3, 0.2, 0.8, 0.6]
    group = ["a", "a", "a", "a", "b", "b", "c", "c", "c"]
    value, used = gauc(label, prob, group)
    assert used == 2
    assert value == pytest.approx((4 * 0.75 + 2 * 0.5) / 6)
    table = group_auc_table(label, prob, group).set_index("group")
    assert np.isnan(table.loc["c", "auc"]) and table.loc["a", "n"] == 4


def test_rank_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    n = 3000
    group = rng.integers(0, 60, size=n)
    label = (rng.random(n) < 0.25).astype(np.float32)
    prob = np.round(rng.random(n), 1)  # heavy ties
    table = group_auc_table(label, prob, group)
    num = den = 0.0
    for g, row in table.set_index("group").iterrows():
        m = group == g
        if label[m].min() == label[m].max():
            assert np.isnan(row["auc"])
            continue
        ref = roc_auc_score(label[m], prob[m])
        assert row["auc"] == pytest.approx(ref, abs=1e-12)
        num += m.sum() * ref
        den += m.sum()
    assert gauc(label, prob, group)[0] == pytest.approx(num / den, abs=1e-12)


def test_accuracy_metrics_keys_and_values():
    rng = np.random.default_rng(1)
    n = 2000
    oracle = rng.uniform(0.05, 0.9, size=n)
    label = (rng.random(n) < oracle).astype(np.float32)
    prob = np.clip(oracle + rng.normal(0, 0.1, size=n), 0.01, 0.99)
    group = rng.integers(0, 100, size=n)
    m = accuracy_metrics(label, prob, group, oracle=oracle)
    assert m["auc"] == pytest.approx(roc_auc_score(label, prob))
    assert m["logloss"] == pytest.approx(log_loss(label, prob))
    assert m["oracle_auc"] == pytest.approx(roc_auc_score(label, oracle))
    assert m["n_rows"] == n and m["positive_rate"] == pytest.approx(label.mean())
    assert 0.8 < m["corr_oracle"] < 1.0
    assert m["gauc"] == pytest.approx(gauc(label, prob, group)[0])
    assert "oracle_auc" not in accuracy_metrics(label, prob, group)
    with pytest.raises(ValueError):
        accuracy_metrics(label, prob[:-1], group)


def test_single_class_auc_is_nan():
    m = accuracy_metrics(np.ones(5), np.linspace(0.1, 0.9, 5), np.zeros(5))
    assert np.isnan(m["auc"]) and np.isnan(m["gauc"]) and m["gauc_groups"] == 0


def test_curve_tables():
    rng = np.random.default_rng(2)
    n = 5000
    prob = rng.random(n)
    label = (rng.random(n) < prob).astype(int)
    roc = roc_curve_data(label, prob, max_points=200)
    assert list(roc.columns) == ["fpr", "tpr", "threshold"] and len(roc) <= 200
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1 and np.isfinite(roc["threshold"]).all()
    assert roc["fpr"].is_monotonic_increasing
    cal = calibration_data(label, prob, n_bins=10)
    assert list(cal.columns) == ["prob_pred", "prob_true"] and len(cal) == 10
    assert np.abs(cal["prob_pred"] - cal["prob_true"]).max() < 0.1  # calibrated by construction


def test_calibration_data_before_and_after_a_monotone_recalibration_share_the_bins():
    """A strictly increasing map keeps each row's quantile bin: the observed rates are shared, and the
    curve before it equals scikit-learn's reliability curve of the uncalibrated probabilities."""
    rng = np.random.default_rng(3)
    z = rng.normal(0, 1.5, 8000)
    label = (rng.random(z.size) < expit(z)).astype(int)
    raw = expit(2.0 * z)  # over-confident
    served = expit(logit(raw) / 2.0)  # temperature-scaled back: calibrated
    cal = calibration_data(label, served, n_bins=10, prob_uncalibrated=raw)
    assert list(cal.columns) == ["prob_pred", "prob_true", "prob_pred_uncalibrated"] and len(cal) == 10
    true_raw, pred_raw = calibration_curve(label, raw, n_bins=10, strategy="quantile")
    np.testing.assert_allclose(cal["prob_true"], true_raw, atol=1e-12)
    np.testing.assert_allclose(cal["prob_pred_uncalibrated"], pred_raw, atol=1e-12)
    # the recalibrated curve hugs the diagonal, the raw one does not
    assert np.abs(cal["prob_pred"] - cal["prob_true"]).max() < 0.05
    assert np.abs(cal["prob_pred_uncalibrated"] - cal["prob_true"]).max() > 0.1
    with pytest.raises(ValueError, match="differ in length"):
        calibration_data(label, served, prob_uncalibrated=raw[:-1])


def test_probability_scores_are_scikit_learns_logloss_and_brier():
    rng = np.random.default_rng(4)
    prob = rng.random(500)
    label = (rng.random(500) < prob).astype(int)
    scores = probability_scores(label, prob)
    assert scores["logloss"] == pytest.approx(log_loss(label, prob)) and scores["brier"] == pytest.approx(
        brier_score_loss(label, prob)
    )
    assert accuracy_metrics(label, prob, np.zeros(500))["logloss"] == scores["logloss"]
    assert all(np.isnan(v) for v in probability_scores(np.zeros(0), np.zeros(0)).values())
