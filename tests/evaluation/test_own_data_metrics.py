"""Evaluating on one's own data (issue 12, items 6 and 7): metrics beyond AUC, label-neutral wording,
a self-contained HTML report, and report rows for what cannot be measured (no user column, a
directed feature with one bucket). Library level; the node-level checks are in
tests/pipelines/test_evaluation_pipeline.py."""

from __future__ import annotations

import base64
import io
import re

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, precision_score, recall_score

from ccss_pipeline.evaluation.accuracy import (
    CLASSIFICATION_METRICS,
    accuracy_metrics,
    calibration_data,
    classification_metrics,
    roc_curve_data,
)
from ccss_pipeline.evaluation.findings import ModelResult
from ccss_pipeline.evaluation.monotonicity import monotonicity_report
from ccss_pipeline.evaluation.plots import (
    ONE_BUCKET_NOTE,
    UNMEASURABLE_GID,
    not_constrained_figure,
    plot_calibration,
    plot_partial_dependence,
    plot_raw_grid_ice,
    plot_roc,
    plot_violation_bars,
)
from ccss_pipeline.evaluation.presentation import PNG_SIGNATURE, PlotRef, png_data_uri
from ccss_pipeline.evaluation.raw_grid import raw_grid_report
from ccss_pipeline.evaluation.report import ReportContext, render_report
from ccss_pipeline.evaluation.seeds import paired_difference, summarize_over_seeds
from ccss_pipeline.spec import FeatureSpec

# A fixed small example: 10 rows, 4 positives.
LABEL = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0])
PROB = np.array([0.9, 0.6, 0.45, 0.3, 0.5, 0.1, 0.55, 0.2, 0.35, 0.05])


def _sklearn(label, prob, threshold):
    pred = (prob >= threshold).astype(int)
    return {
        "accuracy": accuracy_score(label, pred),
        "precision": precision_score(label, pred, zero_division=0),
        "recall": recall_score(label, pred, zero_division=0),
        "f1": f1_score(label, pred, zero_division=0),
        "brier": brier_score_loss(label, prob),
    }


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.56])
def test_classification_metrics_match_sklearn(threshold):
    got = classification_metrics(LABEL, PROB, threshold)
    expected = _sklearn(LABEL, PROB, threshold)
    assert set(got) == {*CLASSIFICATION_METRICS, "threshold"} and got["threshold"] == threshold
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_classification_metrics_by_hand():
    # threshold 0.5: predicted positive = rows 0, 1, 4 (p = 0.5 counts: p >= threshold), 6 -> TP 2, FP 2, FN 2
    m = classification_metrics(LABEL, PROB, 0.5)
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert (
        m["precision"] == pytest.approx(2 / 4) and m["recall"] == pytest.approx(2 / 4) and m["f1"] == pytest.approx(0.5)
    )
    # threshold 0.3: predicted positive = rows 0, 1, 2, 3, 4, 6, 8 -> TP 4, FP 3, FN 0
    m = classification_metrics(LABEL, PROB, 0.3)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["precision"] == pytest.approx(4 / 7) and m["recall"] == 1.0 and m["f1"] == pytest.approx(8 / 11)
    assert m["brier"] == pytest.approx(np.mean((PROB - LABEL) ** 2))


def test_classification_metrics_edge_cases():
    none_predicted = classification_metrics(LABEL, np.full(10, 0.1), 0.5)
    assert none_predicted["precision"] == 0.0 and none_predicted["recall"] == 0.0 and none_predicted["f1"] == 0.0
    assert none_predicted["accuracy"] == pytest.approx(0.6)
    empty = classification_metrics(np.array([]), np.array([]), 0.5)
    assert all(np.isnan(empty[k]) for k in CLASSIFICATION_METRICS)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="threshold"):
            classification_metrics(LABEL, PROB, bad)
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics(LABEL, PROB[:-1])


def test_accuracy_metrics_carries_the_new_metrics():
    group = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    default = accuracy_metrics(LABEL, PROB, group)
    low = accuracy_metrics(LABEL, PROB, group, threshold=0.3)
    for key, value in _sklearn(LABEL, PROB, 0.5).items():
        assert default[key] == pytest.approx(value), key
    for key, value in _sklearn(LABEL, PROB, 0.3).items():
        assert low[key] == pytest.approx(value), key
    assert default["threshold"] == 0.5 and low["threshold"] == 0.3
    assert low["auc"] == default["auc"] and low["brier"] == default["brier"]  # threshold-free metrics unchanged


# ---------------------------------------------------------------------------------------- label name


def _texts(fig) -> str:
    parts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)]
    return " | ".join(parts)


def _scorer(cat, dense, bucket):
    return 1 / (1 + np.exp(-(dense[:, 0] - dense[:, 1])))


def test_plots_name_the_label(spec, inputs):
    mono = monotonicity_report(_scorer, inputs, spec, max_rows=100)
    grid = raw_grid_report(_scorer, inputs, spec, levels=20, rows=50)
    roc = roc_curve_data(inputs.label, inputs.oracle)
    cal = calibration_data(inputs.label, inputs.oracle, n_bins=5)
    figures = {
        "pd": plot_partial_dependence({"m": mono.curves}, "up_feat", 1, label_name="defaulted"),
        "ice": plot_raw_grid_ice(
            {"m": grid.curves}, "up_feat", 1, spec.numerical[0].boundaries, label_name="defaulted"
        ),
        "roc": plot_roc({"m": roc}, label_name="defaulted"),
        "calibration": plot_calibration({"m": cal}, label_name="defaulted"),
        "one bucket": not_constrained_figure("flat", 1, label_name="defaulted"),
    }
    for name, fig in figures.items():
        text = _texts(fig)
        assert "click" not in text.lower() and "defaulted" in text, (name, text)
    assert figures["pd"].axes[0].get_ylabel() == "predicted P(defaulted)"
    assert figures["calibration"].axes[0].get_ylabel() == "observed rate of defaulted"
    # the default names the label generically, never a click
    assert "click" not in _texts(plot_calibration({"m": cal})).lower()


def test_violation_bars_mark_an_unmeasurable_feature():
    table = pd.DataFrame({"feature": ["a", "flat", "b"], "wrong_step_share": [0.1, 0.0, 0.2]})
    fig = plot_violation_bars({"base": table, "ccss": table}, features=["a", "flat", "b"], unmeasurable=["flat"])
    ax = fig.axes[0]
    bars = [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]
    assert len(bars) == 4  # two models × the two measurable features
    assert all(abs(b.get_x() + b.get_width() / 2 - 1) > 0.45 for b in bars)  # nothing drawn at flat (x = 1)
    spans = [p for p in ax.patches if p.get_gid() == UNMEASURABLE_GID]
    assert len(spans) == 1 and spans[0].get_hatch() == "//"
    notes = [t.get_text() for t in ax.texts]
    assert any("not measurable" in t for t in notes) and "0" not in notes  # never annotated as a zero
    assert "not measurable (one bucket)" in {t.get_text() for t in ax.get_legend().get_texts()}


# -------------------------------------------------------------------------------------------- report

FEATURES = {"income": 1, "flat": 1}


def _context(**kw) -> ReportContext:
    rows = []
    for variant, auc in (("baseline", 0.70), ("ccss", 0.71)):
        for seed in (0, 1):
            rows.append({"backbone": "dnn", "variant": variant, "seed": seed, "auc": auc + seed / 1000,
                         "gauc": np.nan, "accuracy": 0.8 + seed / 100, "f1": 0.4, "brier": 0.15,
                         "wrong_step_share": 0.1 if variant == "baseline" else 0.01})  # fmt: skip
    frame = pd.DataFrame(rows)
    metrics = ["auc", "gauc", "accuracy", "f1", "brier", "wrong_step_share"]
    per_feature = pd.DataFrame([
        {"backbone": "dnn", "variant": r["variant"], "seed": r["seed"], "feature": f,
         "wrong_step_share": r["wrong_step_share"] if f == "income" else np.nan,
         "monotone_row_share": 0.5 if f == "income" else 1.0}
        for r in rows for f in FEATURES
    ])  # fmt: skip
    args = {
        "title": "CCSS evaluation — credit",
        "source": "my_loans.parquet",
        "rows_per_split": {"train": 100, "test": 20},
        "directed_features": FEATURES,
        "backbones": ["dnn"],
        "results": ModelResult.from_summary(summarize_over_seeds(frame, ["backbone", "variant"], metrics)),
        "paired": pd.concat([paired_difference(frame, m) for m in metrics], ignore_index=True),
        "per_feature": per_feature,
        "method": {"grid_levels": 50, "grid_rows": 100, "eps": 1e-6, "max_rows": None, "threshold": 0.3},
        "plots": [PlotRef("plots/roc.png", "ROC", "Accuracy")],
        "label_name": "defaulted",
        "gauc_note": "GAUC: n/a — the schema declares no user column",
        "unconstrained": ["flat"],
    }
    return ReportContext(**{**args, **kw})


def test_report_names_the_label_and_the_threshold():
    md, page = render_report(_context())
    for text in (md, page):
        assert "click" not in text.lower() and "defaulted" in text
        assert "P(defaulted) ≥ 0.3" in text
    assert "| accuracy (P ≥ 0.3) | 0.8050 ± 0.0071 | 0.8050 ± 0.0071 |" in md
    assert "| F1 (P ≥ 0.3) | 0.4000 ± 0.0000 |" in md and "| Brier score | 0.1500 ± 0.0000 |" in md
    assert re.search(r"\| accuracy \(P ≥ 0\.3\) \| 2 \| \+0\.0000 \|", md)  # paired table


def test_report_says_why_there_is_no_gauc():
    md, page = render_report(_context())
    for text in (md, page):
        assert "GAUC: n/a — the schema declares no user column" in text
    assert "| GAUC |" not in md  # neither a bare n/a nor a number equal to AUC
    # a measurable GAUC is shown as before
    ctx = _context(gauc_note="")
    ctx.results[0].mean["gauc"] = 0.69
    md, _ = render_report(ctx)
    assert "| GAUC | 0.6900 |" in md and "schema declares no user column" not in md


def test_report_marks_a_one_bucket_feature():
    md, page = render_report(_context())
    rows = [line for line in md.splitlines() if line.startswith("| dnn | flat (+1) |")]
    assert len(rows) == 2  # baseline and CCSS
    for row in rows:
        assert ONE_BUCKET_NOTE in row and "%" not in row  # no 0.00% / 100% that reads as "no violations"
    assert f"flat (+1, {ONE_BUCKET_NOTE})" in md  # the list of directed features says it too
    assert "Not constrained: flat" in md and "Not constrained: flat" in page
    income = [line for line in md.splitlines() if line.startswith("| dnn | income (+1) |")]
    assert len(income) == 2 and all("%" in line for line in income)


def _png(colour: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1], [0, 1], color=colour)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    return buffer.getvalue()


def test_html_embeds_images_as_data_uris():
    plots = [PlotRef("plots/roc.png", "ROC", "Accuracy", _png("red")),
             PlotRef("plots/with space (1).png", "odd name", "Accuracy", _png("blue")),
             PlotRef("plots/optuna/dnn_pareto.png", "Pareto front", "Optuna search (dnn)")]  # fmt: skip
    md, page = render_report(_context(plots=plots))
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == 2 and all(src.startswith("data:image/png;base64,") for src in sources)
    for src, plot in zip(sources, plots, strict=False):
        png = base64.b64decode(src.split(",", 1)[1])
        assert png == plot.png and png.startswith(PNG_SIGNATURE)
        assert mpimg.imread(io.BytesIO(png), format="png").ndim == 3
    assert "Image not embedded: plots/optuna/dnn_pareto.png" in page  # no bytes: named, not linked
    # the Markdown keeps its relative links
    assert "![ROC](plots/roc.png)" in md and "(<plots/with space (1).png>)" in md
    with pytest.raises(ValueError, match="not a PNG"):
        png_data_uri(b"GIF89a")


def test_monotonicity_leaves_a_one_bucket_feature_out_of_pooled_figures(spec, inputs):
    from dataclasses import replace

    one = replace(spec.numerical[2], name="flat", direction=1, boundaries=[], centres=[25.0], centres_dense=[0.0])
    one_bucket_spec = FeatureSpec(spec.categorical, [*spec.numerical[:2], one], source="unit-test")
    flat_inputs = replace(inputs, bucket=inputs.bucket.copy())
    flat_inputs.bucket[:, 2] = 0
    res = monotonicity_report(_scorer, flat_inputs, one_bucket_spec, max_rows=100)
    row = res.per_feature.set_index("feature").loc["flat"]
    assert row["n_pairs"] == 0 and np.isnan(row["violation_rate"]) and np.isnan(row["ice_monotone_share"])
    assert not row["pd_direction_ok"]
    measured = res.per_feature[res.per_feature["feature"] != "flat"]
    assert res.pooled["ice_monotone_share"] == pytest.approx(measured["ice_monotone_share"].mean())
    assert res.pooled["pd_direction_ok_share"] == pytest.approx(measured["pd_direction_ok"].mean())
