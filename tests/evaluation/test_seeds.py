"""Results over seeds (ccss_pipeline.evaluation.seeds): summaries, paired differences, formatting.

Expected numbers are computed by hand in the tests.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.evaluation.seeds import format_mean_std, paired_difference, summarize_over_seeds, t_interval

T_975_2DOF = 4.302653  # Student-t 0.975 quantile, 2 degrees of freedom (tables)
T_975_1DOF = 12.706205


def _frame() -> pd.DataFrame:
    rows = [
        # backbone, variant, seed, auc, share
        ("dnn", "baseline", 0, 0.70, 0.30),
        ("dnn", "baseline", 1, 0.72, 0.20),
        ("dnn", "baseline", 2, 0.71, 0.25),
        ("dnn", "ccss", 0, 0.72, 0.01),
        ("dnn", "ccss", 1, 0.75, 0.02),
        ("dnn", "ccss", 2, 0.72, 0.03),
        # dcn_v2: seed 2 has no CCSS fit, seed 3 no baseline -> two pairs (0 and 1)
        ("dcn_v2", "baseline", 0, 0.60, 0.40),
        ("dcn_v2", "baseline", 1, 0.64, 0.40),
        ("dcn_v2", "baseline", 2, 0.62, 0.40),
        ("dcn_v2", "ccss", 0, 0.61, 0.10),
        ("dcn_v2", "ccss", 1, 0.68, 0.10),
        ("dcn_v2", "ccss", 3, 0.99, 0.10),
        # deepfm: one seed each side
        ("deepfm", "baseline", 0, 0.50, 0.50),
        ("deepfm", "ccss", 0, 0.55, np.nan),
    ]
    return pd.DataFrame(rows, columns=["backbone", "variant", "seed", "auc", "share"])


# ------------------------------------------------------------------------------ summarize_over_seeds


def test_summarize_over_seeds_mean_std_and_count():
    out = summarize_over_seeds(_frame(), ["backbone", "variant"], ["auc", "share"])
    assert list(out.columns) == ["backbone", "variant", "auc_mean", "auc_std", "share_mean", "share_std", "n_seeds"]
    assert len(out) == 6
    row = out[(out.backbone == "dnn") & (out.variant == "ccss")].iloc[0]
    # 0.72, 0.75, 0.72: mean 0.73, deviations -0.01, 0.02, -0.01 -> variance 6e-4 / 2 = 3e-4
    assert row.auc_mean == pytest.approx(0.73)
    assert row.auc_std == pytest.approx(math.sqrt(3e-4))
    assert row.share_mean == pytest.approx(0.02) and row.share_std == pytest.approx(0.01)
    assert row.n_seeds == 3
    base = out[(out.backbone == "dnn") & (out.variant == "baseline")].iloc[0]
    assert base.auc_mean == pytest.approx(0.71) and base.auc_std == pytest.approx(0.01)


def test_summarize_over_seeds_one_seed_gives_nan_std_and_nan_values_are_skipped():
    out = summarize_over_seeds(_frame(), ["backbone", "variant"], ["auc", "share"])
    one = out[(out.backbone == "deepfm") & (out.variant == "baseline")].iloc[0]
    assert one.auc_mean == pytest.approx(0.50) and math.isnan(one.auc_std) and one.n_seeds == 1
    nan_metric = out[(out.backbone == "deepfm") & (out.variant == "ccss")].iloc[0]
    assert nan_metric.auc_mean == pytest.approx(0.55)
    assert math.isnan(nan_metric.share_mean) and math.isnan(nan_metric.share_std)
    # a NaN in one of three seeds: mean and std over the other two
    frame = _frame()
    frame.loc[(frame.backbone == "dnn") & (frame.variant == "ccss") & (frame.seed == 1), "auc"] = np.nan
    row = summarize_over_seeds(frame, ["backbone", "variant"], ["auc"]).query("backbone == 'dnn' and variant == 'ccss'")
    assert row.auc_mean.iloc[0] == pytest.approx(0.72) and row.auc_std.iloc[0] == pytest.approx(0.0)
    assert row.n_seeds.iloc[0] == 3


def test_summarize_over_seeds_without_groups_and_with_a_missing_column():
    out = summarize_over_seeds(_frame(), [], ["auc"])
    assert len(out) == 1 and out.n_seeds.iloc[0] == 14
    assert out.auc_mean.iloc[0] == pytest.approx(_frame().auc.mean())
    with pytest.raises(KeyError, match="nope"):
        summarize_over_seeds(_frame(), ["backbone"], ["nope"])


# ------------------------------------------------------------------------------ paired_difference


def test_paired_difference_three_seeds_with_t_interval():
    out = paired_difference(_frame(), "auc")
    assert list(out.columns) == ["backbone", "metric", "n", "mean", "std", "ci_low", "ci_high", "seeds", "differences"]
    row = out.set_index("backbone").loc["dnn"]
    # differences 0.02, 0.03, 0.01: mean 0.02, std 0.01
    assert row.n == 3 and row.seeds == [0, 1, 2]
    assert row.differences == pytest.approx([0.02, 0.03, 0.01])
    assert row["mean"] == pytest.approx(0.02) and row["std"] == pytest.approx(0.01)
    half = T_975_2DOF * 0.01 / math.sqrt(3)  # = 0.0248414...
    assert row.ci_low == pytest.approx(0.02 - half, abs=1e-6)
    assert row.ci_high == pytest.approx(0.02 + half, abs=1e-6)
    assert row.metric == "auc"


def test_paired_difference_drops_unpaired_seeds():
    row = paired_difference(_frame(), "auc").set_index("backbone").loc["dcn_v2"]
    # pairs on seeds 0 and 1 only: 0.01 and 0.04 -> mean 0.025, std sqrt(2 * 0.015^2) = 0.0212132
    assert row.n == 2 and row.seeds == [0, 1]
    assert row["mean"] == pytest.approx(0.025) and row["std"] == pytest.approx(0.015 * math.sqrt(2))
    half = T_975_1DOF * 0.015 * math.sqrt(2) / math.sqrt(2)
    assert row.ci_low == pytest.approx(0.025 - half, abs=1e-5) and row.ci_high == pytest.approx(0.025 + half, abs=1e-5)


def test_paired_difference_one_pair_or_none_gives_nan_interval():
    out = paired_difference(_frame(), "auc").set_index("backbone")
    one = out.loc["deepfm"]
    assert one.n == 1 and one["mean"] == pytest.approx(0.05)
    assert math.isnan(one["std"]) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    # NaN share on the only CCSS seed of deepfm: no pair at all
    none = paired_difference(_frame(), "share").set_index("backbone").loc["deepfm"]
    assert none.n == 0 and math.isnan(none["mean"]) and math.isnan(none.ci_low) and none.differences == []


def test_paired_difference_errors():
    with pytest.raises(ValueError, match="repeat"):
        paired_difference(pd.concat([_frame(), _frame().iloc[:1]]), "auc")
    with pytest.raises(ValueError, match="repeat"):  # pooled over backbones the seeds repeat
        paired_difference(_frame(), "auc", by=())
    with pytest.raises(KeyError):
        paired_difference(_frame(), "auc", by=("nope",))
    with pytest.raises(ValueError, match="confidence"):
        paired_difference(_frame(), "auc", confidence=1.0)


def test_paired_difference_custom_column_names():
    frame = _frame().rename(columns={"variant": "arm", "seed": "rep"})
    out = paired_difference(frame, "auc", variant_col="arm", pair_on="rep").set_index("backbone")
    assert out.loc["dnn", "n"] == 3 and out.loc["dnn", "mean"] == pytest.approx(0.02)


def test_paired_difference_confidence_and_reversed_roles():
    dnn = _frame().query("backbone == 'dnn'")
    out = paired_difference(dnn, "share", by=(), treatment="baseline", control="ccss", confidence=0.5)
    assert len(out) == 1 and list(out.columns)[:2] == ["metric", "n"]
    row = out.iloc[0]
    # 0.30-0.01, 0.20-0.02, 0.25-0.03 = 0.29, 0.18, 0.22: mean 0.23
    assert row.n == 3 and row["mean"] == pytest.approx(0.23)
    sd = np.std([0.29, 0.18, 0.22], ddof=1)
    assert row["std"] == pytest.approx(sd)
    # with 2 dof the t CDF is 1/2 + t / (2 sqrt(2 + t^2)); = 0.75 at t = sqrt(2/3)
    q = math.sqrt(2 / 3)
    assert row.ci_low == pytest.approx(0.23 - q * sd / math.sqrt(3), abs=1e-6)


def test_t_interval_matches_the_table_value():
    low, high = t_interval([1.0, 2.0, 3.0])
    half = T_975_2DOF * 1.0 / math.sqrt(3)
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half), abs=1e-5)
    assert all(math.isnan(v) for v in t_interval([1.0]))
    assert all(math.isnan(v) for v in t_interval([]))


# ------------------------------------------------------------------------------ format_mean_std


def test_format_mean_std():
    assert format_mean_std(0.78334, 0.00041) == "0.7833 ± 0.0004"
    assert format_mean_std(0.0041, 0.0005, pct=True, digits=2) == "0.41% ± 0.05%"
    assert format_mean_std(0.0041, 0.0005, pct=True) == "0.4100% ± 0.0500%"
    assert format_mean_std(0.5, float("nan")) == "0.5000"
    assert format_mean_std(float("nan"), 0.1) == "n/a"
    assert format_mean_std(0.123456, 0.01, digits=2) == "0.12 ± 0.01"
