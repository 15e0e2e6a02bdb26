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
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.persistence import spec_hash
from ccss_pipeline.pipelines.evaluation.nodes import evaluate_models, plot_evaluation, write_report
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, FeatureSpec
from tests.kedro_project import run_pipelines
from tests.model.conftest import make_inputs, make_spec
from tests.pipelines.test_training_pipelines import is_png, trained_project_root

VERDICT = re.compile(r"monotone in \d+\.\d% of neighbour moves with CCSS, baseline \d+\.\d%")
VERDICT_ANY = re.compile(r"monotone in (\d+\.\d%|n/a) of neighbour moves with CCSS, baseline (\d+\.\d%|n/a)")
MODELS = ("dnn__baseline", "dnn__ccss")

# =====================================================================================================
# Node functions on a tiny in-memory collection
# =====================================================================================================


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    spec = make_spec()
    inputs = make_inputs(spec, 300, seed=5)
    frame = pd.DataFrame({LABEL_COLUMN: inputs.label, GROUP_COLUMN: inputs.group, ORACLE_COLUMN: inputs.oracle})
    for j, c in enumerate(spec.categorical):
        frame[c.column] = inputs.cat[:, j]
    for j, f in enumerate(spec.numerical):
        frame[f.dense_column] = inputs.dense[:, j]
        frame[f.bucket_column] = inputs.bucket[:, j]
    backbone = BackboneConfig(name="dnn", hidden_units=[8], embedding_dim=4, embedding_init_std=0.5)
    models = {}
    for name, weight in (("dnn__baseline", 0.0), ("dnn__ccss", 2.0)):
        model = CTRModel(spec, backbone)
        models[name] = {
            "config": {
                "backbone": backbone.model_dump(),
                "variant": name.split("__")[1],
                "contrastive": ContrastiveConfig(weight=weight).model_dump(),
                "spec_hash": spec_hash(spec),
            },
            "state_dict": model.state_dict(),
        }
    truth = {"directions": {"pos": 1, "neg": -1}}
    return spec, frame, models, truth


@pytest.fixture(scope="module")
def evaluated(tiny):
    spec, frame, models, truth = tiny
    return evaluate_models(frame, spec.to_dict(), models, truth, EvaluationConfig(device="cpu"))


def test_evaluate_models_node(tiny, evaluated):
    spec, frame, models, _ = tiny
    results, per_feature, curves, roc, calibration, metrics = evaluated
    assert set(results) == set(MODELS)
    json.dumps(metrics, allow_nan=True)
    for name in MODELS:
        for key in ("auc", "gauc", "logloss", "oracle_auc", "violation_rate", "compliance", "ice_monotone_share"):
            assert np.isfinite(metrics[f"{name}.{key}"]), (name, key)
        assert 0 <= metrics[f"{name}.auc"] <= 1 and metrics[f"{name}.logloss"] > 0
        assert metrics[f"{name}.violation_rate"] + metrics[f"{name}.compliance"] == pytest.approx(1.0)
        assert 0 <= metrics[f"{name}.true_direction_agreement"] <= 1
        assert results[name]["backbone"] == "dnn" and results[name]["variant"] == name.split("__")[1]
    assert results["dnn__baseline"]["contrastive"]["weight"] == 0.0
    directed = {f.name for f in spec.directed}
    for table in (per_feature, curves):
        assert {"model", "backbone", "variant", "feature"} <= set(table.columns)
        for name in MODELS:
            assert directed <= set(table.loc[table["model"] == name, "feature"])
    assert set(roc["model"]) == set(MODELS) and set(calibration["model"]) == set(MODELS)


def test_evaluate_models_rejects_a_model_of_another_spec(tiny):
    spec, frame, models, truth = tiny
    bad = {"dnn__ccss": {**models["dnn__ccss"], "config": {**models["dnn__ccss"]["config"], "spec_hash": "deadbeef"}}}
    with pytest.raises(ValueError, match="different feature spec"):
        evaluate_models(frame, spec.to_dict(), bad, {}, EvaluationConfig(device="cpu"))


def test_plot_evaluation_node(tiny, evaluated):
    spec = tiny[0]
    _, per_feature, curves, roc, calibration, _ = evaluated
    pd_plots, violation, roc_fig, calibration_fig = plot_evaluation(curves, per_feature, roc, calibration, spec.to_dict())
    assert set(pd_plots) == {f"pd_dnn_{f.name}.png" for f in spec.directed}
    for fig in [*pd_plots.values(), violation, roc_fig, calibration_fig]:
        assert isinstance(fig, Figure) and fig.axes


def test_write_report_node(tiny, evaluated):
    spec = tiny[0]
    results, per_feature, *_ = evaluated
    best = {"loss": "margin", "weight": 2.0, "margin": 0.02, "study": "ccss-abc", "n_trials": 3, "source": "trial 1"}
    split = {"tables": {"train": {"rows": 10}, "validation": {"rows": 5}, "test": {"rows": 300}}}
    md, html = write_report(results, per_feature, spec.to_dict(), best, split, EvaluationConfig())
    for text in (md, html):
        for f in spec.directed:
            assert f.name in text
        assert "ccss-abc" in text
    lines = md.splitlines()
    for f in spec.directed:  # "flat" has a single bucket: no neighbour move, so n/a
        pattern = VERDICT if f.n_buckets >= 2 else VERDICT_ANY
        assert any(line.lstrip("-* ").startswith(f"{f.name} (") and pattern.search(line) for line in lines), f.name
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html.lower()
    for f in spec.directed:
        assert f"plots/partial_dependence/pd_dnn_{f.name}.png" in md


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


@pytest.mark.slow
def test_metrics_json(evaluated_project):
    metrics = json.loads((evaluated_project / "data" / "08_reporting" / "metrics.json").read_text())
    for name in MODELS:
        for key in ("auc", "gauc", "logloss", "violation_rate", "oracle_auc"):
            value = metrics[f"{name}.{key}"]
            assert isinstance(value, float) and np.isfinite(value), (name, key)
        assert 0.5 < metrics[f"{name}.auc"] <= 1 and 0.5 < metrics[f"{name}.oracle_auc"] <= 1
        assert 0 <= metrics[f"{name}.violation_rate"] <= 1


@pytest.mark.slow
def test_tables(evaluated_project):
    spec = _spec(evaluated_project)
    reporting = evaluated_project / "data" / "08_reporting"
    directed = {f.name for f in spec.directed}
    mono = pd.read_csv(reporting / "monotonicity_per_feature.csv")
    assert {"model", "backbone", "variant", "feature", "violation_rate"} <= set(mono.columns)
    for name in MODELS:
        assert set(mono.loc[mono["model"] == name, "feature"]) == directed, name
    pdp = pd.read_csv(reporting / "partial_dependence.csv")
    assert {"model", "backbone", "variant", "feature"} <= set(pdp.columns)
    assert directed <= set(pdp["feature"]) and set(pdp["model"]) == set(MODELS)
    roc = pd.read_csv(reporting / "roc.csv")
    assert {"model", "fpr", "tpr"} <= set(roc.columns) and set(roc["model"]) == set(MODELS)
    assert roc[["fpr", "tpr"]].stack().between(0, 1).all()
    calibration = pd.read_csv(reporting / "calibration.csv")
    assert {"model"} <= set(calibration.columns) and set(calibration["model"]) == set(MODELS)
    assert len(calibration.columns) >= 4


@pytest.mark.slow
def test_plots_are_valid_images(evaluated_project):
    spec = _spec(evaluated_project)
    plots = evaluated_project / "data" / "08_reporting" / "plots"
    pngs = sorted(plots.rglob("*.png"))
    expected = {f"pd_dnn_{f.name}.png" for f in spec.directed} | {"violation_rate.png", "roc.png", "calibration.png"}
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
        assert VERDICT.search(text), "no verdict line"
    for f in spec.directed:
        assert any(f.name in line and VERDICT.search(line) for line in md.splitlines()), f.name
    # every image the Markdown report embeds exists next to it
    for target in re.findall(r"!\[[^\]]*\]\(<?([^)>]+)>?\)", md):
        assert (reporting / target).is_file(), target
