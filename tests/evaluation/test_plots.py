from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ccss_pipeline.evaluation.accuracy import calibration_data, roc_curve_data
from ccss_pipeline.evaluation.monotonicity import monotonicity_report
from ccss_pipeline.evaluation.plots import (
    EDGE_GID,
    UNCALIBRATED_GID,
    plot_calibration,
    plot_partial_dependence,
    plot_raw_grid_ice,
    plot_roc,
    plot_violation_bars,
    save_figure,
)
from ccss_pipeline.evaluation.raw_grid import raw_grid_report


def _scorer(sign):
    def scorer(cat, dense, bucket):
        return 1 / (1 + np.exp(-(sign * dense[:, 0] - dense[:, 1])))

    return scorer


@pytest.fixture
def results(spec, inputs):
    return {
        "baseline": monotonicity_report(_scorer(-1), inputs, spec),
        "CCSS": monotonicity_report(_scorer(1), inputs, spec),
    }


@pytest.fixture
def grid_results(spec, inputs):
    kw = {"levels": 40, "rows": 50}
    return {
        "dnn baseline": raw_grid_report(_scorer(-1), inputs, spec, **kw),
        "dnn CCSS": raw_grid_report(_scorer(1), inputs, spec, **kw),
    }


def _check_png(fig, path):
    assert isinstance(fig, Figure)
    save_figure(fig, path)
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img.shape[2] in (3, 4)
    assert img[..., :3].std() > 0.01  # not blank


def _edges(ax):
    return [line for line in ax.lines if line.get_gid() == EDGE_GID]


def test_pd_plot(results, tmp_path):
    fig = plot_partial_dependence({k: r.curves for k, r in results.items()}, "up_feat", +1)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # two PD lines, two ICE bands
    assert "up_feat" in ax.get_title()
    _check_png(fig, tmp_path / "plots" / "pd.png")


def test_raw_grid_ice_plot(spec, grid_results, tmp_path):
    feat = spec.numerical[0]
    fig = plot_raw_grid_ice({k: r.curves for k, r in grid_results.items()}, feat.name, feat.direction, feat.boundaries)
    ax = fig.axes[0]
    edges = _edges(ax)
    assert len(edges) == len(feat.boundaries) == 7  # one thin vertical line per bucket edge
    assert [line.get_xdata()[0] for line in edges] == pytest.approx(feat.boundaries)
    assert all(line.get_linewidth() < 1 for line in edges)
    means = [line for line in ax.lines if line.get_gid() != EDGE_GID]
    assert len(means) == 2 and len(ax.collections) == 2  # one mean line and one 10–90% band per model
    assert "up_feat" in ax.get_title() and "+1" in ax.get_title() and "increasing" in ax.get_title()
    assert ax.get_xscale() == "linear"  # the sketch spans -2.5..53.5
    # x is the raw value: the CCSS mean rises over the grid, the baseline's falls
    ccss, base = grid_results["dnn CCSS"].curves, grid_results["dnn baseline"].curves
    assert np.all(np.diff(ccss.loc[ccss["feature"] == "up_feat", "mean"]) > 0)
    assert np.all(np.diff(base.loc[base["feature"] == "up_feat", "mean"]) < 0)
    assert list(means[0].get_xdata()) == pytest.approx(list(base.loc[base["feature"] == "up_feat", "value"]))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels.count("bucket edges") == 1 and "dnn CCSS (mean)" in labels
    _check_png(fig, tmp_path / "ice.png")


@pytest.mark.parametrize(("low", "expected"), [(1.0, "log"), (0.0, "symlog"), (50.0, "linear")])
def test_raw_grid_ice_x_scale(low, expected):
    values = np.concatenate([[low], np.geomspace(2.0, 1e4, 30)]) if low < 50 else np.linspace(50, 120, 31)
    curves = pd.DataFrame({"feature": "count", "value": values, "mean": np.linspace(0.1, 0.2, 31),
                           "q10": 0.05, "q90": 0.3})  # fmt: skip
    boundaries = [values[10], values[20]]
    fig = plot_raw_grid_ice({"CCSS": curves}, "count", -1, boundaries)
    ax = fig.axes[0]
    assert ax.get_xscale() == expected
    assert len(_edges(ax)) == 2 and "-1" in ax.get_title() and "decreasing" in ax.get_title()


def test_raw_grid_ice_without_edges(grid_results):
    fig = plot_raw_grid_ice({k: r.curves for k, r in grid_results.items()}, "down_feat", -1, [])
    assert _edges(fig.axes[0]) == [] and len(fig.axes[0].lines) == 2


def _bars(values, stds=None):
    table = pd.DataFrame({"feature": ["a", "b", "c"][: len(values)], "wrong_step_share": values})
    if stds is not None:
        table["wrong_step_share_std"] = stds
    return table


def test_violation_bars_log_scale_keeps_small_bars_visible(tmp_path):
    per_model = {
        "dnn baseline": _bars([0.10, 0.02, 0.0], [0.01, 0.004, np.nan]),
        "dnn CCSS": _bars([0.001, 0.0]),  # no row for feature c: no data
    }
    fig = plot_violation_bars(per_model, features=["a", "b", "c"])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    low, _ = ax.get_ylim()
    assert 0 < low < 0.001  # the 0.1% bar stands above the axis floor
    assert len(ax.patches) == 6
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["10.0%", "2.0%", "0", "0.1%", "0", "n/a"]  # zero and missing read differently
    assert any(c.get_segments() for c in ax.collections)  # std error bars
    _check_png(fig, tmp_path / "bars_log.png")


def test_violation_bars_linear_when_values_are_comparable(results, tmp_path):
    fig = plot_violation_bars({k: r.per_feature for k, r in results.items()}, metric="violation_rate")
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear"
    assert len(ax.patches) == 4  # 2 features x 2 models
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights[-1] > 0.5 and heights[0] == 0  # baseline violates up_feat, CCSS nothing
    assert sorted(t.get_text() for t in ax.texts)[:2] == ["0", "0"]
    _check_png(fig, tmp_path / "bars.png")


def test_roc_and_calibration(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.random(1000)
    label = (rng.random(1000) < prob).astype(int)
    noisy = np.clip(prob + rng.normal(0, 0.3, 1000), 0, 1)
    fig = plot_roc({"a": roc_curve_data(label, prob), "b": roc_curve_data(label, noisy)})
    assert len(fig.axes[0].lines) == 3
    assert "AUC" in fig.axes[0].get_legend().get_texts()[0].get_text()
    _check_png(fig, tmp_path / "roc.png")
    fig = plot_calibration({"a": calibration_data(label, prob), "b": calibration_data(label, noisy)})
    assert len(fig.axes[0].lines) == 3
    _check_png(fig, tmp_path / "cal.png")


def test_calibration_plot_draws_the_curve_before_recalibration_dashed(tmp_path):
    rng = np.random.default_rng(1)
    prob = rng.random(2000)
    label = (rng.random(2000) < prob).astype(int)
    sharp = prob**3 / (prob**3 + (1 - prob) ** 3)  # over-confident, same order
    curves = {
        "recalibrated": calibration_data(label, prob, prob_uncalibrated=sharp),
        "identity": calibration_data(label, prob, prob_uncalibrated=prob),  # nothing moved: no second curve
    }
    fig = plot_calibration(curves, label_name="is_click")
    ax = fig.axes[0]
    dashed = [line for line in ax.lines if line.get_gid() == UNCALIBRATED_GID]
    assert len(dashed) == 1 and len(ax.lines) == 4  # two models, one "before", the diagonal
    np.testing.assert_allclose(dashed[0].get_xdata(), curves["recalibrated"]["prob_pred_uncalibrated"])
    assert dashed[0].get_color() == ax.lines[0].get_color() and dashed[0].get_linestyle() == "--"
    assert "before recalibration" in ax.get_title()
    assert "recalibrated, before recalibration" in [t.get_text() for t in ax.get_legend().get_texts()]
    _check_png(fig, tmp_path / "cal_before_after.png")


def test_no_pyplot_state_leak(results, grid_results):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_partial_dependence({k: r.curves for k, r in results.items()}, "down_feat", -1)
    plot_raw_grid_ice({k: r.curves for k, r in grid_results.items()}, "down_feat", -1, [10.0])
    plot_violation_bars({"m": _bars([0.1, 0.0])})
    assert plt.get_fignums() == before


def test_pd_plot_skewed_centres_with_zero(results, tmp_path):
    curves = results["CCSS"].curves.copy()
    sub = curves["feature"] == "up_feat"
    curves.loc[sub, "centre"] = [0, 1, 3, 10, 30, 100, 300, 1000]
    fig = plot_partial_dependence({"CCSS": curves}, "up_feat", 1)
    assert fig.axes[0].get_xscale() == "symlog"
    _check_png(fig, tmp_path / "skew.png")
