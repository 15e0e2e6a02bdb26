"""The evaluation pipeline: node functions on a tiny in-memory model collection, and Kedro end to end
on the project trained by tests/pipelines/test_training_pipelines.py."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, precision_score, recall_score

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, EvaluationConfig, FeatureConfig
from ccss_pipeline.data.validation import TableStats, ValidationReport
from ccss_pipeline.evaluation.aggregate import aggregate_over_seeds
from ccss_pipeline.evaluation.figures import FigureSet, draw_evaluation_figures
from ccss_pipeline.evaluation.findings import collect_findings
from ccss_pipeline.evaluation.plots import EDGE_GID, ONE_BUCKET_NOTE, UNMEASURABLE_GID
from ccss_pipeline.evaluation.presentation import NO_USER_GAUC, PNG_SIGNATURE
from ccss_pipeline.evaluation.results import SEED_METRICS
from ccss_pipeline.lineage import stamp
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.persistence import TrainedModel
from ccss_pipeline.model.scoring import score_fn
from ccss_pipeline.pipelines.evaluation.nodes import evaluate_models, plot_evaluation, write_model_card, write_report
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, FeatureSpec, ModelInputs
from tests.kedro_project import run_pipelines
from tests.model.conftest import make_inputs, make_spec
from tests.support.trained_project import is_png

MEAN_STD = re.compile(r"\d+\.\d{2,4}%? ± \d+\.\d{2,4}%?")
SEEDS = (0, 1)
VARIANTS = ("baseline", "ccss")
MODELS = tuple(f"dnn__{v}__seed{s}" for v in VARIANTS for s in SEEDS)
NEW_METRICS = ("accuracy", "precision", "recall", "f1", "brier")

# =====================================================================================================
# Node functions on a tiny in-memory collection
# =====================================================================================================


def _collection(spec: FeatureSpec, with_group: bool = True):
    """The test table (stamped for ``spec``), four tiny untrained models (2 variants × 2 seeds) and the truth."""
    inputs = make_inputs(spec, 300, seed=5)
    frame = pd.DataFrame({LABEL_COLUMN: inputs.label, GROUP_COLUMN: inputs.group, ORACLE_COLUMN: inputs.oracle})
    if not with_group:
        frame = frame.drop(columns=[GROUP_COLUMN])
    for j, c in enumerate(spec.categorical):
        frame[c.column] = inputs.cat[:, j]
    for j, f in enumerate(spec.numerical):
        frame[f.dense_column] = inputs.dense[:, j]
        frame[f.bucket_column] = inputs.bucket[:, j]
    stamp(frame, spec)  # built for this spec, as feature engineering records it
    backbone = BackboneConfig(name="dnn", hidden_units=[8], embedding_dim=4, embedding_init_std=0.5)
    models = {}
    for name in MODELS:
        _, variant, seed = name.split("__")
        torch.manual_seed(int(seed[len("seed") :]) * 10 + VARIANTS.index(variant))
        model = CTRModel(spec, backbone)
        models[name] = TrainedModel.of(
            model,
            spec,
            variant,
            int(seed[len("seed") :]),
            move="straddle" if variant == "ccss" else None,
            contrastive=ContrastiveConfig(weight=2.0 if variant == "ccss" else 0.0),
        )
    truth = {"directions": {"pos": 1, "neg": -1}}
    return spec, frame, models, truth


@pytest.fixture(scope="module")
def tiny():
    return _collection(make_spec())


SPLIT_ROWS = {"train": 10, "validation": 5, "test": 300}
EVALUATION = EvaluationConfig(device="cpu", grid_levels=25, grid_rows=60, max_rows=100)


@pytest.fixture(scope="module")
def evaluated(tiny):
    spec, frame, models, truth = tiny
    return evaluate_models(frame, spec, models, truth, EVALUATION)


@pytest.fixture(scope="module")
def aggregated(evaluated):
    return aggregate_over_seeds(evaluated[-1])


def _best_params(feasible=True):
    return {
        "dnn": ChosenParams(loss="margin", weight=2.0, margin=0.02, temperature=0.1, learning_rate=0.001,
                            source="trial 1", val_auc=0.6512, val_wrong_step_share=0.0123, feasible=feasible,
                            max_violation=0.005, study="ccss-abc", n_trials=3)
    }  # fmt: skip


def test_evaluate_models_node(tiny, evaluated, aggregated):
    spec, frame, models, _ = tiny
    results, per_feature, grid_features, curves, grid_curves, roc, calibration, seed_metrics = evaluated
    assert set(results) == set(MODELS)
    for name in MODELS:
        assert results[name]["backbone"] == "dnn" and results[name]["variant"] == name.split("__")[1]
        assert f"seed{results[name]['seed']}" == name.split("__")[2]
    assert results["dnn__baseline__seed0"]["contrastive"]["weight"] == 0.0
    assert list(seed_metrics.columns) == [
        "model",
        "backbone",
        "variant",
        "seed",
        "recalibration",
        "best_epoch",
        "max_epochs",
        *SEED_METRICS,
    ]
    assert len(seed_metrics) == len(MODELS) and seed_metrics[["auc", "wrong_step_share"]].notna().all().all()
    directed = {f.name for f in spec.directed}
    for table in (per_feature, grid_features):  # every seed
        assert {"model", "backbone", "variant", "seed", "feature"} <= set(table.columns)
        for name in MODELS:
            assert directed <= set(table.loc[table["model"] == name, "feature"])
    for table in (curves, grid_curves, roc, calibration):  # first seed only
        assert set(table["seed"]) == {SEEDS[0]} and set(table["variant"]) == set(VARIANTS)
    summary, paired, metrics = aggregated.summary, aggregated.paired, aggregated.metrics
    assert set(summary["n_seeds"]) == {len(SEEDS)} and "wrong_step_share_std" in summary.columns
    assert set(paired["n"]) == {len(SEEDS)}
    json.dumps(metrics, allow_nan=False)
    assert np.isfinite(metrics["dnn__ccss.auc.mean"]) and "dnn.ccss_minus_baseline.auc.ci_low" in metrics


def test_new_metrics_flow_to_seed_metrics_summary_and_metrics_json(tiny, evaluated, aggregated):
    results, *_, seed_metrics = evaluated
    summary, paired, metrics = aggregated.summary, aggregated.paired, aggregated.metrics
    assert {*NEW_METRICS} <= set(seed_metrics.columns) and seed_metrics[list(NEW_METRICS)].notna().all().all()
    for name in MODELS:
        accuracy = results[name]["accuracy"]
        row = seed_metrics.set_index("model").loc[name]
        assert accuracy["threshold"] == EVALUATION.threshold == 0.5
        for m in NEW_METRICS:
            assert row[m] == pytest.approx(accuracy[m]), (name, m)
    for variant in VARIANTS:
        for m in NEW_METRICS:
            for stat in ("mean", "std"):
                assert np.isfinite(metrics[f"dnn__{variant}.{m}.{stat}"]), (variant, m, stat)
        mean = seed_metrics[seed_metrics["variant"] == variant]["f1"].mean()
        assert metrics[f"dnn__{variant}.f1.mean"] == pytest.approx(mean)
        assert summary.set_index("variant").loc[variant, "brier_mean"] == pytest.approx(
            metrics[f"dnn__{variant}.brier.mean"]
        )
    assert set(NEW_METRICS) <= set(paired["metric"]) and "dnn.ccss_minus_baseline.f1.mean" in metrics


def test_threshold_reaches_the_metrics(tiny):
    """evaluation.threshold decides the positive rows: the node's figures equal scikit-learn's on the
    model's own predictions at that threshold."""
    spec, frame, models, truth = tiny
    name = "dnn__ccss__seed0"
    config = EvaluationConfig(**{**EVALUATION.model_dump(), "threshold": 0.55})
    results, *_, seed_metrics = evaluate_models(frame, spec, {name: models[name]}, truth, config)
    model = CTRModel(spec, models[name].backbone)
    model.load_state_dict(dict(models[name].state_dict))
    test = ModelInputs.from_frame(frame, spec)
    prob = score_fn(model.eval(), torch.device("cpu"))(test.cat, test.dense, test.bucket)
    y, pred = test.label.astype(int), (prob >= 0.55).astype(int)
    assert 0 < pred.sum() < len(pred)  # the threshold splits the rows
    expected = {"accuracy": accuracy_score(y, pred), "precision": precision_score(y, pred, zero_division=0),
                "recall": recall_score(y, pred, zero_division=0), "f1": f1_score(y, pred, zero_division=0),
                "brier": brier_score_loss(y, prob)}  # fmt: skip
    row = seed_metrics.iloc[0]
    for m, value in expected.items():
        assert row[m] == pytest.approx(value, abs=1e-6), m
    assert results[name]["accuracy"]["threshold"] == 0.55


@pytest.fixture(scope="module")
def recalibrated(tiny):
    """The tiny collection with every model temperature-scaled (T = 2.5) and the same models without it,
    both evaluated with ε = 0 (every step's sign counts)."""
    spec, frame, models, truth = tiny
    exact = EvaluationConfig(**{**EVALUATION.model_dump(), "eps": 0.0})
    scaled = {k: replace(m, recalibration=Recalibration("temperature", 1 / 2.5)) for k, m in models.items()}
    after = evaluate_models(frame, spec, scaled, truth, exact)
    before = evaluate_models(frame, spec, models, truth, exact)
    return after, aggregate_over_seeds(after[-1]), before


def test_recalibrated_models_report_logloss_and_brier_before_and_after(recalibrated):
    (results, _, grid_features, _, _, _, calibration, seed_metrics), aggregate, before = recalibrated
    summary, paired, metrics = aggregate.summary, aggregate.paired, aggregate.metrics
    plain = before[-1].set_index("model")
    rows = seed_metrics.set_index("model")
    assert set(rows["recalibration"]) == {"temperature"} and set(plain["recalibration"]) == {"none"}
    assert np.allclose(rows["recalibration_temperature"], 2.5) and (rows["recalibration_shift"] == 0).all()
    # "before" is the same model without its map: exactly the figures of the un-recalibrated evaluation
    for m in ("logloss", "brier"):
        np.testing.assert_allclose(rows[f"{m}_uncalibrated"], plain.loc[rows.index, m], rtol=0, atol=1e-12)
        assert (rows[m] != rows[f"{m}_uncalibrated"]).all(), m
    # a strictly increasing map: the ranking figures and every raw-grid count are those of the raw model
    for m in ("auc", "gauc", "wrong_step_share", "edge_wrong_share", "monotone_row_share", "neighbour_violation_rate"):
        np.testing.assert_array_equal(rows[m].to_numpy(), plain.loc[rows.index, m].to_numpy(), err_msg=m)
    columns = ["wrong_step_share", "edge_wrong_share", "monotone_row_share"]
    np.testing.assert_array_equal(grid_features[columns].to_numpy(), before[2][columns].to_numpy())
    name = "dnn__ccss__seed0"
    assert results[name]["recalibration"]["kind"] == "temperature"
    assert results[name]["uncalibrated"]["logloss"] == pytest.approx(rows.loc[name, "logloss_uncalibrated"])
    # the reliability curve before is the raw model's own, in the same bins
    cal, raw_cal = calibration.reset_index(drop=True), before[6].reset_index(drop=True)
    np.testing.assert_allclose(cal["prob_pred_uncalibrated"], raw_cal["prob_pred"], atol=1e-12)
    np.testing.assert_allclose(cal["prob_true"], raw_cal["prob_true"], atol=1e-12)
    assert "prob_pred_uncalibrated" in before[6].columns  # present, equal to prob_pred, without a map
    assert set(summary["recalibration"]) == {"temperature"}
    assert {"logloss_uncalibrated", "brier_uncalibrated", "recalibration_temperature"} <= set(paired["metric"])
    assert metrics["dnn__ccss.logloss_uncalibrated.mean"] == pytest.approx(
        rows.loc[rows["variant"] == "ccss", "logloss_uncalibrated"].mean()
    )
    assert metrics["dnn__ccss.recalibration_temperature.mean"] == pytest.approx(2.5)


def test_report_and_card_say_which_recalibration_and_what_it_changed(tiny, evaluated, aggregated, recalibrated):
    after, summary = recalibrated[0], recalibrated[1].summary
    md, html = _report(tiny, after, recalibrated[1])
    means = summary.set_index("variant")
    change = (f"CCSS {means.loc['ccss', 'logloss_uncalibrated_mean']:.4f} → {means.loc['ccss', 'logloss_mean']:.4f} "
              "(T = 2.5)")  # fmt: skip
    for text in (md, html):
        sentence = next(line for line in text.splitlines() if "Recalibration: temperature scaling" in line)
        assert "validation split" in sentence and change in sentence and "baseline " in sentence
        assert "LogLoss before recalibration" in text and "Brier score before recalibration" in text
        assert "recalibration: shift b" not in text  # temperature scaling has no shift
    lineage = {"git_commit": "unknown", "git_dirty": None, "dvc_lock": None, "env": "base", "artifacts": {}}
    card, _ = _card(tiny, after, recalibrated[1], lineage, {})
    assert change in card and "LogLoss before recalibration" in card
    # without a recalibration the report says so and shows no "before" rows
    plain, _ = _report(tiny, evaluated, aggregated)
    assert "Recalibration: none" in plain and "before recalibration" not in plain


def test_evaluate_models_rejects_a_model_of_another_spec(tiny):
    spec, frame, models, truth = tiny
    bad = {"dnn__ccss__seed0": replace(models["dnn__ccss__seed0"], spec_fingerprint="deadbeef")}
    with pytest.raises(ValueError, match=r"trained_models\['dnn__ccss__seed0'\]' was built for another feature spec"):
        evaluate_models(frame, spec, bad, {}, EVALUATION)


def test_plot_evaluation_node(tiny, evaluated):
    spec = tiny[0]
    _, _, grid_features, curves, grid_curves, roc, calibration, _ = evaluated
    grid_plots, pd_plots, violation, roc_fig, calibration_fig = draw_evaluation_figures(
        grid_curves, curves, grid_features, roc, calibration, spec
    ).outputs()
    assert set(grid_plots) == {f"ice_dnn_{f.name}.png" for f in spec.directed}
    assert set(pd_plots) == {f"pd_dnn_{f.name}.png" for f in spec.directed}
    measurable = [f for f in spec.directed if f.n_buckets > 1]
    assert [f.name for f in spec.directed if f.n_buckets == 1] == ["flat"]
    for f in measurable:
        ax = grid_plots[f"ice_dnn_{f.name}.png"].axes[0]
        edges = [line for line in ax.lines if line.get_gid() == EDGE_GID]
        assert len(edges) == len(f.boundaries), f.name
        assert len(ax.lines) - len(edges) == 2  # baseline and CCSS
    for fig in (grid_plots["ice_dnn_flat.png"], pd_plots["pd_dnn_flat.png"]):  # no one-point curve
        ax = fig.axes[0]
        assert not ax.lines and "not measurable" in ax.get_title() and ONE_BUCKET_NOTE in ax.texts[0].get_text()
    bars = violation.axes[0]
    drawn = [p for c in bars.containers if isinstance(c, BarContainer) for p in c.patches]
    assert len(drawn) == len(measurable) * len(VARIANTS)  # flat gets no (zero-height) bar
    assert [p.get_gid() for p in bars.patches if p not in drawn] == [UNMEASURABLE_GID]
    assert "2 seeds" in bars.get_title()
    assert {t.get_text() for t in bars.get_legend().get_texts()} == {
        "dnn baseline",
        "dnn CCSS",
        "not measurable (one bucket)",
    }
    assert len(roc_fig.axes[0].lines) == 3  # two models (first seed) + diagonal
    for fig in [*grid_plots.values(), *pd_plots.values(), violation, roc_fig, calibration_fig]:
        assert isinstance(fig, Figure) and fig.axes


def _png(text: str) -> bytes:
    import io

    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=(2, 1))
    fig.text(0.1, 0.5, text)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


OPTUNA_IMAGES = {f"dnn_{name}.png": _png(name) for name in ("pareto", "history", "importance")}


def _report(tiny, evaluated, aggregated, feasible=True, figures=True, optuna=None):
    spec = tiny[0]
    results, per_feature, grid_features, curves, grid_curves, roc, calibration, _ = evaluated
    summary, paired = aggregated.summary, aggregated.paired
    split = ValidationReport(True, tables={s: TableStats(f"{s}.parquet", s, n, 20) for s, n in SPLIT_ROWS.items()})
    findings = collect_findings(
        results, summary, paired, grid_features, per_feature, spec, _best_params(feasible), split
    )
    drawn = plot_evaluation(grid_curves, curves, grid_features, roc, calibration, spec)[-1] if figures else FigureSet()
    return write_report(findings, drawn, optuna, EVALUATION, FeatureConfig())


def test_write_report_node(tiny, evaluated, aggregated):
    spec = tiny[0]
    md, html = _report(tiny, evaluated, aggregated)
    summary = aggregated.summary.set_index("variant")
    for text in (md, html):
        for f in spec.directed:
            assert f.name in text
        assert "ccss-abc" in text and "trial 1" in text
        assert "baseline (2 seeds)" in text and "CCSS (2 seeds)" in text
        assert "neighbour-move violation rate (the move the loss trains)" in text
        assert "Verdict — dnn: " in text and "straddle" in text
        assert "float32" in text and "G = 25" in text and "60 test rows" in text
    auc = f"{summary.loc['ccss', 'auc_mean']:.4f} ± {summary.loc['ccss', 'auc_std']:.4f}"
    assert auc in md
    assert MEAN_STD.search(md)
    assert "target not met" not in md.lower()
    assert html.lstrip().lower().startswith("<!doctype html")
    for f in spec.directed:
        if f.n_buckets == 1:  # its figures only say "not constrained": the table says so instead
            assert f"pd_dnn_{f.name}.png" not in md and f"ice_dnn_{f.name}.png" not in md
            continue
        assert f"plots/partial_dependence/pd_dnn_{f.name}.png" in md
        assert f"plots/raw_grid/ice_dnn_{f.name}.png" in md
    for name in ("pareto", "history", "importance"):
        assert f"plots/optuna/dnn_{name}.png" in md
    # the headline (raw grid) comes before the bucket-centre figures and the method notes
    assert md.index("raw-grid wrong-step share (pooled)") < md.index("## Method") < md.index("pd_dnn_")


def test_write_report_node_says_when_the_target_is_missed(tiny, evaluated, aggregated):
    md, _ = _report(tiny, evaluated, aggregated, feasible=False)
    assert "Target not met for dnn" in md and "NO — target not met" in md


def _embedded_pngs(html: str) -> list[bytes]:
    """Every ``<img src>`` of the page, decoded; fails on one that is not a PNG data URI."""
    sources = re.findall(r"<img\s[^>]*src=\"([^\"]*)\"", html)
    assert html.count("<img") == len(sources)
    out = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:80]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_SIGNATURE)
        assert mpimg.imread(io.BytesIO(png), format="png").shape[2] in (3, 4)
        out.append(png)
    return out


def test_write_report_node_html_is_self_contained(tiny, evaluated, aggregated):
    spec = tiny[0]
    md, html = _report(tiny, evaluated, aggregated)
    pngs = _embedded_pngs(html)
    measurable = [f for f in spec.directed if f.n_buckets > 1]
    assert len(pngs) == 2 * len(measurable) + 3  # ICE and PD per feature, bars, ROC, calibration
    assert 'src="plots/' not in html and "href=" not in html
    # without the Optuna plots' bytes they are named, not linked ...
    for name in ("pareto", "history", "importance"):
        assert f"Image not embedded: plots/optuna/dnn_{name}.png" in html
        assert f"(plots/optuna/dnn_{name}.png)" in md  # the Markdown keeps its relative links
    # ... and with them (optuna_plot_images, read back from the search's folder) they are embedded too
    _, full = _report(tiny, evaluated, aggregated, optuna=OPTUNA_IMAGES)
    assert len(_embedded_pngs(full)) == len(pngs) + 3 and "Image not embedded" not in full
    # without the curve tables nothing is embedded, and still nothing is linked
    _, bare = _report(tiny, evaluated, aggregated, figures=False)
    assert "<img" not in bare and "Image not embedded: plots/roc.png" in bare


def test_write_report_node_marks_the_one_bucket_feature(tiny, evaluated, aggregated):
    md, html = _report(tiny, evaluated, aggregated)
    rows = [line for line in md.splitlines() if line.startswith("| dnn | flat (+1) |")]
    assert len(rows) == len(VARIANTS)
    for row in rows:
        assert ONE_BUCKET_NOTE in row and "%" not in row and "n/a" not in row
    assert f"flat (+1, {ONE_BUCKET_NOTE})" in md and "Not constrained: flat" in html
    assert "dnn | pos (+1) | quantiles | baseline" in md  # measurable features keep their numbers


def test_one_bucket_feature_is_left_out_of_direction_agreement(tiny):
    spec, frame, models, _ = tiny
    one = {"dnn__ccss__seed0": models["dnn__ccss__seed0"]}
    with_flat = evaluate_models(frame, spec, one, {"directions": {"pos": 1, "neg": -1, "flat": 1}}, EVALUATION)
    without = evaluate_models(frame, spec, one, {"directions": {"pos": 1, "neg": -1}}, EVALUATION)
    assert (
        with_flat[0]["dnn__ccss__seed0"]["direction_agreement"] == without[0]["dnn__ccss__seed0"]["direction_agreement"]
    )
    flat_only = evaluate_models(frame, spec, one, {"directions": {"flat": 1}}, EVALUATION)
    assert flat_only[0]["dnn__ccss__seed0"]["direction_agreement"] is None  # nothing measurable: no 0% nor 100%
    per_feature = with_flat[1].set_index("feature")
    assert np.isnan(per_feature.loc["flat", "ice_monotone_share"]) and per_feature.loc["flat", "n_pairs"] == 0
    pooled = with_flat[0]["dnn__ccss__seed0"]["pooled"]
    assert pooled["ice_monotone_share"] == pytest.approx(per_feature.loc[["pos", "neg"], "ice_monotone_share"].mean())


# ----------------------------------------------------------------------- own data: label name, no user


@pytest.fixture(scope="module")
def own_data():
    """The tiny collection on a schema whose label is "defaulted" and that declares no user column
    (the test table then has no group column at all)."""
    spec = replace(make_spec(), label_name="defaulted", has_user=False, source="credit.parquet")
    spec, frame, models, truth = _collection(spec, with_group=False)
    evaluated = evaluate_models(frame, spec, models, truth, EVALUATION)
    return spec, evaluated, aggregate_over_seeds(evaluated[-1])


def test_no_user_column_reports_gauc_as_not_available(own_data):
    spec, evaluated, aggregated = own_data
    results, *_, seed_metrics = evaluated
    paired, metrics = aggregated.paired, aggregated.metrics
    assert seed_metrics["gauc"].isna().all() and seed_metrics["auc"].notna().all()
    assert all(r["accuracy"]["gauc_note"] == NO_USER_GAUC for r in results.values())
    assert not any(".gauc." in k for k in metrics) and "gauc" not in set(paired["metric"])
    assert np.isfinite(metrics["dnn__ccss.f1.mean"])
    md, html = _report((spec,), evaluated, aggregated)
    for text in (md, html):
        assert "GAUC: n/a — the schema declares no user column" in text
    assert "| GAUC |" not in md


def test_constant_group_gives_no_gauc_equal_to_auc(tiny):
    """A schema with a user column whose test rows all share one group: GAUC would equal AUC."""
    spec, frame, models, truth = tiny
    one = {"dnn__ccss__seed0": models["dnn__ccss__seed0"]}
    results, *_, seed_metrics = evaluate_models(frame.assign(**{GROUP_COLUMN: 7}), spec, one, truth, EVALUATION)
    assert np.isnan(seed_metrics["gauc"].iloc[0]) and np.isfinite(seed_metrics["auc"].iloc[0])
    assert "every test row has the same user" in results["dnn__ccss__seed0"]["accuracy"]["gauc_note"]


def _figure_texts(fig: Figure) -> str:
    parts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)]
    return " | ".join(parts)


def test_label_name_replaces_click_everywhere(own_data):
    spec, evaluated, aggregated = own_data
    _, _, grid_features, curves, grid_curves, roc, calibration, _ = evaluated
    grid_plots, pd_plots, violation, roc_fig, calibration_fig = draw_evaluation_figures(
        grid_curves, curves, grid_features, roc, calibration, spec
    ).outputs()
    for name, fig in [*grid_plots.items(), *pd_plots.items(), ("violation", violation), ("roc", roc_fig),
                      ("calibration", calibration_fig)]:  # fmt: skip
        text = _figure_texts(fig)
        assert "click" not in text.lower(), (name, text)
        assert "defaulted" in text, (name, text)
    assert roc_fig.axes[0].get_title() == "ROC — defaulted"
    assert pd_plots["pd_dnn_pos.png"].axes[0].get_ylabel() == "predicted P(defaulted)"
    md, html = _report((spec,), evaluated, aggregated)
    assert _embedded_pngs(html)
    page_text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # base64 may spell anything
    for text in (md, page_text):
        assert "click" not in text.lower() and "defaulted" in text
        assert "P(defaulted) ≥ 0.5" in text


# ------------------------------------------------------------------------------------------ model card


def _card(tiny, evaluated, aggregated, lineage, parameters):
    spec, frame = tiny[0], tiny[1]
    results, per_feature, grid_features, curves, grid_curves, roc, calibration, _ = evaluated
    summary, paired = aggregated.summary, aggregated.paired
    split = ValidationReport(True, tables={s: TableStats(f"{s}.parquet", s, n, 20) for s, n in SPLIT_ROWS.items()})
    day = 86_400_000
    train, valid, test = (frame.assign(event_ts=np.arange(len(frame), dtype=np.int64) * 1000 + start * day)
                          for start in (19_000, 19_010, 19_020))  # fmt: skip
    findings = collect_findings(results, summary, paired, grid_features, per_feature, spec, _best_params(), split)
    figures = plot_evaluation(grid_curves, curves, grid_features, roc, calibration, spec)[-1]
    return write_model_card(findings, figures, train, valid, test, lineage, parameters, EVALUATION)


def test_write_model_card_node(tiny, evaluated, aggregated):
    from ccss_pipeline.fingerprint import content_hash

    spec = tiny[0]
    lineage = {"git_commit": "unknown", "git_dirty": None, "dvc_lock": None, "env": "base", "artifacts": {}}
    # Kedro passes typed top-level parameters as their pydantic models: the hash sees their values
    parameters = {"schema": {"timestamp": "time_ms"}, "feature_engineering": {"split": {"mode": "time"}},
                  "evaluation": EVALUATION}  # fmt: skip
    md, html = _card(tiny, evaluated, aggregated, lineage, parameters)
    parameters = {**parameters, "evaluation": EVALUATION.model_dump(mode="json")}
    for f in spec.directed:
        assert f"{f.name} ({f.direction:+d})" in md
    assert "## Backbone: dnn" in md and "ΔAUC (CCSS − baseline, paired on the training seed, 2 pairs)" in md
    assert "ccss-abc" in md and "trial 1" in md and "Parameters hash (SHA-256" in md and content_hash(parameters) in md
    assert "Split mode: time" in md and "2022-01-08 00:00:00 UTC" in md  # day 19000 after the epoch
    assert "Git commit: unknown" in md and "no dvc.lock was found" in md
    measurable = [f for f in spec.directed if f.n_buckets > 1]
    assert len(_embedded_pngs(html)) == len(measurable) and 'src="plots/' not in html
    for f in measurable:
        assert f"(plots/raw_grid/ice_dnn_{f.name}.png)" in md
    # another parameter set gives another hash; no timestamp in the schema gives no time range
    other = {**parameters, "schema": {"timestamp": None}}
    md2, _ = _card(tiny, evaluated, aggregated, lineage, other)
    assert content_hash(other) in md2 and content_hash(parameters) not in md2 and "UTC" not in md2


# =====================================================================================================
# Kedro end to end
# =====================================================================================================


@pytest.fixture(scope="module")
def evaluated_project(trained_project) -> Path:
    root = trained_project
    run_pipelines(root, pipeline_names=["evaluation"])
    return root


def _spec(root: Path) -> FeatureSpec:
    return FeatureSpec.from_dict(json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text()))


def trained_models_json(root: Path) -> dict[str, dict]:
    """Each trained model's ``model.json``, by model name."""
    folder = root / "data" / "06_models" / "trained"
    return {p.name: json.loads((p / "model.json").read_text()) for p in folder.iterdir() if p.is_dir()}


def _seed_metrics(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data" / "08_reporting" / "seed_metrics.csv")


@pytest.mark.slow
def test_metrics_json(evaluated_project):
    metrics = json.loads((evaluated_project / "data" / "08_reporting" / "metrics.json").read_text())
    n_seeds = _seed_metrics(evaluated_project).groupby("variant").size()
    for variant in VARIANTS:
        assert metrics[f"dnn__{variant}.n_seeds"] == n_seeds[variant] >= 2
        for key in (
            "auc",
            "gauc",
            "logloss",
            *NEW_METRICS,
            "wrong_step_share",
            "edge_wrong_share",
            "neighbour_violation_rate",
            "oracle_auc",
        ):
            for stat in ("mean", "std"):
                value = metrics[f"dnn__{variant}.{key}.{stat}"]
                assert isinstance(value, float) and np.isfinite(value), (variant, key, stat)
        assert 0.5 < metrics[f"dnn__{variant}.auc.mean"] <= 1 and 0.5 < metrics[f"dnn__{variant}.oracle_auc.mean"] <= 1
        assert 0 <= metrics[f"dnn__{variant}.wrong_step_share.mean"] <= 1
    low, high = metrics["dnn.ccss_minus_baseline.auc.ci_low"], metrics["dnn.ccss_minus_baseline.auc.ci_high"]
    assert low <= metrics["dnn.ccss_minus_baseline.auc.mean"] <= high


@pytest.mark.slow
def test_tables(evaluated_project):
    spec = _spec(evaluated_project)
    reporting = evaluated_project / "data" / "08_reporting"
    directed = {f.name for f in spec.directed}
    seeds = _seed_metrics(evaluated_project)
    models = set(seeds["model"])
    assert all(re.fullmatch(r"dnn__(baseline|ccss)__seed\d+", m) for m in models) and len(models) >= 4
    first = {m for m in models if m.endswith(f"__seed{seeds['seed'].min()}")}
    for table in ("monotonicity_per_feature", "raw_grid_per_feature"):
        frame = pd.read_csv(reporting / f"{table}.csv")
        assert {"model", "backbone", "variant", "seed", "feature"} <= set(frame.columns)
        for name in models:
            assert set(frame.loc[frame["model"] == name, "feature"]) == directed, (table, name)
    for table in ("partial_dependence", "raw_grid", "roc", "calibration"):
        frame = pd.read_csv(reporting / f"{table}.csv")
        assert set(frame["model"]) == first, table
    roc = pd.read_csv(reporting / "roc.csv")
    assert roc[["fpr", "tpr"]].stack().between(0, 1).all()
    summary = pd.read_csv(reporting / "seed_summary.csv")
    assert set(summary["variant"]) == set(VARIANTS) and "wrong_step_share_std" in summary.columns
    paired = pd.read_csv(reporting / "paired_differences.csv")
    assert {"backbone", "metric", "n", "mean", "ci_low", "ci_high"} <= set(paired.columns)
    # the project trains with the default recalibration (temperature): before and after, and the map
    assert list(seeds.columns) == [
        "model",
        "backbone",
        "variant",
        "seed",
        "recalibration",
        "best_epoch",
        "max_epochs",
        *SEED_METRICS,
    ]
    assert set(seeds["recalibration"]) == set(summary["recalibration"]) == {"temperature"}
    assert (seeds["recalibration_temperature"] > 0).all() and (seeds["recalibration_shift"] == 0).all()
    assert seeds[["logloss_uncalibrated", "brier_uncalibrated"]].notna().all().all()
    assert (seeds["logloss"] <= seeds["logloss_uncalibrated"] + 0.01).all()  # fitted on validation, scored on test
    for m in ("logloss_uncalibrated", "brier_uncalibrated", "recalibration_temperature"):
        assert f"{m}_mean" in summary.columns and m in set(paired["metric"]), m
    calibration = pd.read_csv(reporting / "calibration.csv")
    assert {"prob_pred", "prob_true", "prob_pred_uncalibrated"} <= set(calibration.columns)
    models_json = trained_models_json(evaluated_project)
    for name, row in seeds.set_index("model").iterrows():
        assert row["recalibration_temperature"] == pytest.approx(models_json[name]["recalibration"]["temperature"])


@pytest.mark.slow
def test_plots_are_valid_images(evaluated_project):
    spec = _spec(evaluated_project)
    plots = evaluated_project / "data" / "08_reporting" / "plots"
    pngs = sorted(plots.rglob("*.png"))
    expected = {f"pd_dnn_{f.name}.png" for f in spec.directed} | {f"ice_dnn_{f.name}.png" for f in spec.directed}
    expected |= {"violation_rate.png", "roc.png", "calibration.png"}
    assert expected <= {p.name for p in pngs}
    for png in pngs:
        assert is_png(png), png


@pytest.mark.slow
def test_report(evaluated_project):
    spec = _spec(evaluated_project)
    reporting = evaluated_project / "data" / "08_reporting"
    md = (reporting / "report.md").read_text()
    html = (reporting / "report.html").read_text()
    for text in (md, html):
        for f in spec.directed:
            assert f.name in text, f.name
        assert "Verdict — dnn: " in text and MEAN_STD.search(text)
        assert "95% interval" in text
        assert "Recalibration: temperature scaling of the logit (z / T), fitted on the validation split" in text
        assert "LogLoss before recalibration" in text
    # every image the Markdown report embeds exists next to it (the Optuna plots come from model_training)
    targets = re.findall(r"!\[[^\]]*\]\(<?([^)>]+)>?\)", md)
    assert "plots/optuna/dnn_pareto.png" in targets
    for target in targets:
        assert (reporting / target).is_file(), target
    # the HTML embeds every figure, the Optuna plots included (it survives being mailed or moved), links none
    assert len(_embedded_pngs(html)) == len(targets) and "Image not embedded" not in html
    assert 'src="plots/' not in html


@pytest.mark.slow
def test_model_card(evaluated_project):
    spec = _spec(evaluated_project)
    reporting = evaluated_project / "data" / "08_reporting"
    md = (reporting / "model_card.md").read_text()
    html = (reporting / "model_card.html").read_text()
    for text in (md, html):
        for f in spec.directed:
            assert f"{f.name} ({f.direction:+d})" in text, f.name
        assert "Backbone: dnn" in text and "Kedro environment: base" in text
        assert "Git commit: unknown" in text  # the throw-away project is not a git repository
        assert "dvc repro" in text
    assert "no dvc.lock was found" in md
    targets = re.findall(r"!\[[^\]]*\]\(<?([^)>]+)>?\)", md)
    assert targets and all((reporting / t).is_file() for t in targets)
    assert len(_embedded_pngs(html)) == len(targets) and "Image not embedded" not in html
