"""The evaluation pipeline: node functions on a tiny in-memory model collection, and Kedro end to end
on the project trained by tests/pipelines/test_training_pipelines.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, EvaluationConfig
from ccss_pipeline.evaluation.plots import EDGE_GID
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.persistence import spec_hash
from ccss_pipeline.pipelines.evaluation.nodes import (
    SEED_METRICS,
    aggregate_over_seeds,
    evaluate_models,
    plot_evaluation,
    write_report,
)
from ccss_pipeline.lineage import stamp
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, FeatureSpec
from tests.kedro_project import run_pipelines
from tests.model.conftest import make_inputs, make_spec
from tests.pipelines.test_training_pipelines import is_png, trained_project_root

MEAN_STD = re.compile(r"\d+\.\d{2,4}%? ± \d+\.\d{2,4}%?")
SEEDS = (0, 1)
VARIANTS = ("baseline", "ccss")
MODELS = tuple(f"dnn__{v}__seed{s}" for v in VARIANTS for s in SEEDS)

# =====================================================================================================
# Node functions on a tiny in-memory collection
# =====================================================================================================


@pytest.fixture(scope="module")
def tiny():
    spec = make_spec()
    inputs = make_inputs(spec, 300, seed=5)
    frame = pd.DataFrame({LABEL_COLUMN: inputs.label, GROUP_COLUMN: inputs.group, ORACLE_COLUMN: inputs.oracle})
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
        torch.manual_seed(int(seed[len("seed"):]) * 10 + VARIANTS.index(variant))
        model = CTRModel(spec, backbone)
        models[name] = {
            "config": {
                "backbone": backbone.model_dump(),
                "variant": variant,
                "seed": int(seed[len("seed"):]),
                "move": "straddle" if variant == "ccss" else None,
                "contrastive": ContrastiveConfig(weight=2.0 if variant == "ccss" else 0.0).model_dump(),
                "spec_hash": spec_hash(spec),
            },
            "state_dict": model.state_dict(),
        }
    truth = {"directions": {"pos": 1, "neg": -1}}
    return spec, frame, models, truth


EVALUATION = EvaluationConfig(device="cpu", grid_levels=25, grid_rows=60, max_rows=100)


@pytest.fixture(scope="module")
def evaluated(tiny):
    spec, frame, models, truth = tiny
    return evaluate_models(frame, spec.to_dict(), models, truth, EVALUATION)


@pytest.fixture(scope="module")
def aggregated(evaluated):
    return aggregate_over_seeds(evaluated[-1])


def _best_params(feasible=True):
    return {
        "dnn": {"loss": "margin", "weight": 2.0, "margin": 0.02, "temperature": 0.1, "learning_rate": 0.001,
                "source": "trial 1", "val_auc": 0.6512, "val_wrong_step_share": 0.0123, "feasible": feasible,
                "max_violation": 0.005, "study": "ccss-abc", "n_trials": 3}
    }  # fmt: skip


def test_evaluate_models_node(tiny, evaluated, aggregated):
    spec, frame, models, _ = tiny
    results, per_feature, grid_features, curves, grid_curves, roc, calibration, seed_metrics = evaluated
    assert set(results) == set(MODELS)
    for name in MODELS:
        assert results[name]["backbone"] == "dnn" and results[name]["variant"] == name.split("__")[1]
        assert f"seed{results[name]['seed']}" == name.split("__")[2]
    assert results["dnn__baseline__seed0"]["contrastive"]["weight"] == 0.0
    assert list(seed_metrics.columns) == ["model", "backbone", "variant", "seed", *SEED_METRICS]
    assert len(seed_metrics) == len(MODELS) and seed_metrics[["auc", "wrong_step_share"]].notna().all().all()
    directed = {f.name for f in spec.directed}
    for table in (per_feature, grid_features):  # every seed
        assert {"model", "backbone", "variant", "seed", "feature"} <= set(table.columns)
        for name in MODELS:
            assert directed <= set(table.loc[table["model"] == name, "feature"])
    for table in (curves, grid_curves, roc, calibration):  # first seed only
        assert set(table["seed"]) == {SEEDS[0]} and set(table["variant"]) == set(VARIANTS)
    summary, paired, metrics = aggregated
    assert set(summary["n_seeds"]) == {len(SEEDS)} and "wrong_step_share_std" in summary.columns
    assert set(paired["n"]) == {len(SEEDS)}
    json.dumps(metrics, allow_nan=False)
    assert np.isfinite(metrics["dnn__ccss.auc.mean"]) and "dnn.ccss_minus_baseline.auc.ci_low" in metrics


def test_evaluate_models_rejects_a_model_of_another_spec(tiny):
    spec, frame, models, truth = tiny
    entry = models["dnn__ccss__seed0"]
    bad = {"dnn__ccss__seed0": {**entry, "config": {**entry["config"], "spec_hash": "deadbeef"}}}
    with pytest.raises(ValueError, match=r"trained_models\['dnn__ccss__seed0'\]' was built for another feature spec"):
        evaluate_models(frame, spec.to_dict(), bad, {}, EVALUATION)


def test_plot_evaluation_node(tiny, evaluated):
    spec = tiny[0]
    _, _, grid_features, curves, grid_curves, roc, calibration, _ = evaluated
    grid_plots, pd_plots, violation, roc_fig, calibration_fig = plot_evaluation(
        grid_curves, curves, grid_features, roc, calibration, spec.to_dict())
    assert set(grid_plots) == {f"ice_dnn_{f.name}.png" for f in spec.directed}
    assert set(pd_plots) == {f"pd_dnn_{f.name}.png" for f in spec.directed}
    for f in spec.directed:
        ax = grid_plots[f"ice_dnn_{f.name}.png"].axes[0]
        edges = [line for line in ax.lines if line.get_gid() == EDGE_GID]
        assert len(edges) == len(f.boundaries), f.name
        assert len(ax.lines) - len(edges) == 2  # baseline and CCSS
    bars = violation.axes[0]
    assert len(bars.patches) == len(spec.directed) * len(VARIANTS)
    assert "2 seeds" in bars.get_title()
    assert {t.get_text() for t in bars.get_legend().get_texts()} == {"dnn baseline", "dnn CCSS"}
    assert len(roc_fig.axes[0].lines) == 3  # two models (first seed) + diagonal
    for fig in [*grid_plots.values(), *pd_plots.values(), violation, roc_fig, calibration_fig]:
        assert isinstance(fig, Figure) and fig.axes


def _report(tiny, evaluated, aggregated, feasible=True):
    spec = tiny[0]
    results, per_feature, grid_features, *_ = evaluated
    summary, paired, _ = aggregated
    split = {"tables": {"train": {"rows": 10}, "validation": {"rows": 5}, "test": {"rows": 300}}}
    return write_report(results, summary, paired, grid_features, per_feature, spec.to_dict(), _best_params(feasible),
                        split, EVALUATION)


def test_write_report_node(tiny, evaluated, aggregated):
    spec = tiny[0]
    md, html = _report(tiny, evaluated, aggregated)
    summary = aggregated[0].set_index("variant")
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
        assert f"plots/partial_dependence/pd_dnn_{f.name}.png" in md
        assert f"plots/raw_grid/ice_dnn_{f.name}.png" in md
    for name in ("pareto", "history", "importance"):
        assert f"plots/optuna/dnn_{name}.png" in md
    # the headline (raw grid) comes before the bucket-centre figures and the method notes
    assert md.index("raw-grid wrong-step share (pooled)") < md.index("## Method") < md.index("pd_dnn_")


def test_write_report_node_says_when_the_target_is_missed(tiny, evaluated, aggregated):
    md, _ = _report(tiny, evaluated, aggregated, feasible=False)
    assert "Target not met for dnn" in md and "NO — target not met" in md


# =====================================================================================================
# Kedro end to end
# =====================================================================================================


@pytest.fixture(scope="module")
def evaluated_project(tmp_path_factory) -> Path:
    root = trained_project_root(tmp_path_factory)
    run_pipelines(root, pipeline_names=["evaluation"])
    return root


def _spec(root: Path) -> FeatureSpec:
    return FeatureSpec.from_dict(json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text()))


def _seed_metrics(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data" / "08_reporting" / "seed_metrics.csv")


@pytest.mark.slow
def test_metrics_json(evaluated_project):
    metrics = json.loads((evaluated_project / "data" / "08_reporting" / "metrics.json").read_text())
    n_seeds = _seed_metrics(evaluated_project).groupby("variant").size()
    for variant in VARIANTS:
        assert metrics[f"dnn__{variant}.n_seeds"] == n_seeds[variant] >= 2
        for key in ("auc", "gauc", "logloss", "wrong_step_share", "edge_wrong_share", "neighbour_violation_rate", "oracle_auc"):
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
    for table, every_seed in (("monotonicity_per_feature", True), ("raw_grid_per_feature", True)):
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
    # every image the Markdown report embeds exists next to it (the Optuna plots come from model_training)
    targets = re.findall(r"!\[[^\]]*\]\(<?([^)>]+)>?\)", md)
    assert "plots/optuna/dnn_pareto.png" in targets
    for target in targets:
        assert (reporting / target).is_file(), target
