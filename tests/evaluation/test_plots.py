from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.figure import Figure

from ccss_pipeline.evaluation.accuracy import calibration_data, roc_curve_data
from ccss_pipeline.evaluation.monotonicity import monotonicity_report
from ccss_pipeline.evaluation.plots import (
    plot_calibration,
    plot_partial_dependence,
    plot_roc,
    plot_violation_bars,
    save_figure,
)


def _scorer(sign):
    def scorer(cat, dense, bucket):
        return 1 / (1 + np.exp(-(sign * dense[:, 0] - dense[:, 1])))

    return scorer


@pytest.fixture
def results(spec, inputs):
    return {"baseline": monotonicity_report(_scorer(-1), inputs, spec), "CCSS": monotonicity_report(_scorer(1), inputs, spec)}


def _check_png(fig, path):
    assert isinstance(fig, Figure)
    save_figure(fig, path)
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img.shape[2] in (3, 4)
    assert img[..., :3].std() > 0.01  # not blank


def test_pd_plot(results, tmp_path):
    fig = plot_partial_dependence({k: r.curves for k, r in results.items()}, "up_feat", +1)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # two PD lines, two ICE bands
    assert "up_feat" in ax.get_title()
    _check_png(fig, tmp_path / "plots" / "pd.png")


def test_violation_bars(results, tmp_path):
    fig = plot_violation_bars({k: r.per_feature for k, r in results.items()})
    ax = fig.axes[0]
    assert len(ax.patches) == 4  # 2 features x 2 models
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights[-1] > 0.5 and heights[0] == 0  # baseline violates up_feat, CCSS nothing
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


def test_no_pyplot_state_leak(results):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_partial_dependence({k: r.curves for k, r in results.items()}, "down_feat", -1)
    assert plt.get_fignums() == before


def test_pd_plot_skewed_centres_with_zero(results, tmp_path):
    curves = results["CCSS"].curves.copy()
    sub = curves["feature"] == "up_feat"
    curves.loc[sub, "centre"] = [0, 1, 3, 10, 30, 100, 300, 1000]
    fig = plot_partial_dependence({"CCSS": curves}, "up_feat", 1)
    assert fig.axes[0].get_xscale() == "symlog"
    _check_png(fig, tmp_path / "skew.png")
