"""The counterfactual_pairs and model_training pipelines, end to end through Kedro (the ``train`` pipeline).

One small synthetic project is trained once per test session (``kedro run --pipeline=train`` as a
subprocess, the way a user runs it) and shared with tests/pipelines/test_evaluation_pipeline.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ccss_pipeline.spec import FeatureSpec
from tests.kedro_project import run_pipelines
from tests.support.trained_project import MODELS, N_TRIALS, is_png, kedro_cli


def _spec(root: Path) -> FeatureSpec:
    return FeatureSpec.from_dict(json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text()))


# =====================================================================================================
# counterfactual_pairs outputs
# =====================================================================================================


@pytest.mark.slow
def test_feature_importance_artifact(trained_project):
    spec = _spec(trained_project)
    imp = json.loads((trained_project / "data" / "04_feature" / "feature_importance.json").read_text())
    assert set(imp["q"]) == {f.name for f in spec.numerical}
    assert all(np.isfinite(v) and v >= 0 for v in imp["q"].values())
    assert list(imp["p"]) == [f.name for f in spec.directed] and spec.directed
    p = np.array(list(imp["p"].values()))
    assert p.sum() == pytest.approx(1.0) and (p >= 0).all()
    for f in spec.directed:
        assert (imp["p"][f.name] > 0) == (f.n_buckets >= 2), f.name
    assert imp["warmup"]["backbone"] == "dnn" and imp["warmup"]["epochs"] == 1


@pytest.mark.slow
def test_counterfactual_pairs_artifact(trained_project):
    from ccss_pipeline.model.moves import ANCHOR, get_move, move_name
    from ccss_pipeline.model.synthesis import PairTable

    spec = _spec(trained_project)
    train = pd.read_parquet(trained_project / "data" / "05_model_input" / "train.parquet")
    frame = pd.read_parquet(trained_project / "data" / "05_model_input" / "counterfactual_pairs.parquet")
    pairs = PairTable.from_frame(frame)
    configured = yaml.safe_load((trained_project / "conf" / "base" / "parameters_counterfactual_pairs.yml").read_text())
    cfg = configured["counterfactual_pairs"]
    assert pairs.move == move_name(cfg["move"], cfg["anchor_share"])
    template = get_move(pairs.move)
    assert 0.5 * len(train) < len(pairs) <= len(train)
    assert frame["row"].is_unique and frame["row"].between(0, len(train) - 1).all()
    assert set(np.unique(pairs.feature)) <= set(spec.directed_indices())

    rows, k = pairs.row, pairs.feature
    bucket = train[[f.bucket_column for f in spec.numerical]].to_numpy()[rows, k]
    nb = np.array([spec.numerical[i].n_buckets for i in k])
    direction = np.array([spec.numerical[i].direction for i in k])
    assert (bucket < nb).all()  # a row's missing feature is never the one moved
    if template.anchored:  # the move starts from its anchor: the row's own bucket or a stratified one
        anchor, _ = pairs.point(ANCHOR)
        own = anchor == bucket
        assert abs((1 - own.mean()) - template.anchor_share) < 0.2  # about the configured share moved away
        assert (anchor < nb).all() and (anchor >= 0).all()
        bucket = anchor
    if template.has_centre_pair:
        up, _ = pairs.point("up")
        down, _ = pairs.point("down")
        np.testing.assert_array_equal(up, np.where(bucket + 1 < nb, bucket + 1, bucket))
        np.testing.assert_array_equal(down, np.where(bucket >= 1, bucket - 1, bucket))
    # every point stays within one bucket of the move's start (the row's bucket or its anchor), in a real bucket
    assert (np.abs(pairs.bucket - bucket[:, None]) <= 1).all() and (pairs.bucket < nb[:, None]).all()
    label = train["label"].to_numpy()[rows]
    s = np.where(label == 1, direction, -direction)
    np.testing.assert_array_equal(pairs.f_is_up, s == 1)


# =====================================================================================================
# model_training outputs
# =====================================================================================================


@pytest.mark.slow
def test_search_artifacts(trained_project):
    models = trained_project / "data" / "06_models"
    reporting = trained_project / "data" / "08_reporting"
    assert (models / "optuna.db").is_file()
    trials = pd.read_csv(reporting / "optuna_trials.csv")
    assert len(trials) == N_TRIALS and trials["number"].tolist() == list(range(N_TRIALS))
    assert set(trials["backbone"]) == {"dnn"}
    assert {"val_auc", "val_wrong_step_share", "params_weight", "params_margin", "state"} <= set(trials.columns)
    assert "params_temperature" not in trials.columns  # margin loss has no τ
    for name in ("dnn_pareto.png", "dnn_history.png", "dnn_importance.png"):
        assert is_png(reporting / "plots" / "optuna" / name), name
    best = json.loads((models / "best_params.json").read_text())["dnn"]
    assert best["n_trials"] == N_TRIALS and best["loss"] == "margin"
    complete = trials[trials["state"] == "COMPLETE"]
    if len(complete):
        share, edge = complete["val_wrong_step_share"], complete["user_attrs_val_edge_wrong_share"]
        meets = (share <= best["max_violation"]) & (edge <= best["max_edge_violation"])
        feasible = complete[meets]
        if len(feasible):
            top = feasible.sort_values(["val_auc", "number"], ascending=[False, True]).iloc[0]
        else:  # the closest: the smaller worst ratio of a measured share to its target
            ratio = np.maximum(share / best["max_violation"], edge / best["max_edge_violation"])
            top = complete.assign(ratio=ratio).sort_values(["ratio", "val_auc"], ascending=[True, False]).iloc[0]
        assert best["n_feasible"] == len(feasible)
        assert best["feasible"] == bool(len(feasible))
        assert best["source"] == f"trial {int(top['number'])}"
        assert best["weight"] == pytest.approx(top["params_weight"]) and best["margin"] == pytest.approx(
            top["params_margin"]
        )
        assert 0.1 <= best["weight"] <= 10.0 and 1e-3 <= best["margin"] <= 0.1
    else:
        assert best["source"] == "defaults"


@pytest.mark.slow
def test_trained_models(trained_project):
    from ccss_pipeline.datasets.models import ModelCollectionDataset

    trained = trained_project / "data" / "06_models" / "trained"
    assert sorted(p.name for p in trained.iterdir()) == sorted(MODELS)
    for name in MODELS:
        assert (trained / name / "model.pt").is_file() and (trained / name / "model.json").is_file()
    best = json.loads((trained_project / "data" / "06_models" / "best_params.json").read_text())["dnn"]
    cfg = {n: json.loads((trained / n / "model.json").read_text()) for n in MODELS}
    for seed in (42, 43):
        base, ccss = cfg[f"dnn__baseline__seed{seed}"], cfg[f"dnn__ccss__seed{seed}"]
        assert base["contrastive"]["weight"] == 0 and base["seed"] == ccss["seed"] == seed
        assert ccss["contrastive"]["weight"] == pytest.approx(best["weight"]) and best["weight"] > 0
        assert ccss["contrastive"]["margin"] == pytest.approx(best["margin"])
        assert base["variant"] == "baseline" and ccss["variant"] == "ccss"
        # identical settings apart from the contrastive weight
        assert base["optimizer"] == ccss["optimizer"] and ccss["optimizer"]["seed"] == seed
        assert base["backbone"] == ccss["backbone"]
        assert ccss["optimizer"]["max_epochs"] == 2
        assert ccss["spec_hash"] == _spec(trained_project).fingerprint
    # different seeds give different weights
    loaded = ModelCollectionDataset(str(trained)).load()
    assert set(loaded) == set(MODELS)
    first = loaded["dnn__ccss__seed42"].state_dict
    second = loaded["dnn__ccss__seed43"].state_dict
    assert any(not np.array_equal(first[k].numpy(), second[k].numpy()) for k in first)
    history = json.loads((trained_project / "data" / "08_reporting" / "training_history.json").read_text())
    assert set(history) == set(MODELS)
    assert all(0.5 < h["best_val_auc"] <= 1 for h in history.values())
    # every model, CCSS and baseline alike, is temperature-scaled on validation (the default) and says so
    for name in MODELS:
        recalibration = cfg[name]["recalibration"]
        assert recalibration["kind"] == "temperature" and recalibration["shift"] == 0 and recalibration["scale"] > 0
        assert history[name]["recalibration"] == recalibration
        assert loaded[name].recalibration.scale == recalibration["scale"]
        assert loaded[name].rebuild(_spec(trained_project)).recalibration == loaded[name].recalibration


@pytest.mark.slow
def test_rerun_with_pipelines_option_resumes_the_study(trained_project, trained_build):
    """``kedro run --pipelines=train`` (the plural option) reruns and finds the study complete."""
    before = trained_build.trials
    kedro_cli(trained_project, "--pipelines=train")
    after = pd.read_csv(trained_project / "data" / "08_reporting" / "optuna_trials.csv")
    assert len(after) == N_TRIALS
    columns = ["number", "val_auc", "val_wrong_step_share", "params_weight", "params_margin", "state"]
    pd.testing.assert_frame_equal(after[columns], before[columns])
    best = json.loads((trained_project / "data" / "06_models" / "best_params.json").read_text())
    assert best["dnn"]["n_trials"] == N_TRIALS
    leftovers = [p for p in (trained_project / "data").rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []


@pytest.mark.slow
def test_in_process_session_uses_the_project_folder_not_the_cwd(trained_project, tmp_path, monkeypatch):
    """A KedroSession started from another working directory (a notebook, a test) must keep the Optuna
    study and the checkpoints inside the project, like every catalog path, and resume the study there."""
    root = tmp_path / "copy"
    shutil.copytree(trained_project, root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_pipelines(root, pipeline_names=["model_training"])
    assert list(elsewhere.iterdir()) == [], "the run wrote outside the project"
    trials = pd.read_csv(root / "data" / "08_reporting" / "optuna_trials.csv")
    assert len(trials) == N_TRIALS


@pytest.mark.slow
@pytest.mark.parametrize("start", [None, "model_training.train_ccss_and_baseline"])
def test_pairs_of_another_move_are_refused_before_training_starts(trained_project, tmp_path, start):
    """``counterfactual_pairs.move`` changed and ``model_training`` rerun alone (or from its final-fit node):
    the run refuses the old pair table, naming it and the rebuild, before a node's work starts."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = tmp_path / "moved"
    shutil.copytree(trained_project, root)
    models = sorted((root / "data" / "06_models").rglob("*"))
    written = {p: p.stat().st_mtime_ns for p in models}
    bootstrap_project(root)
    params = {"counterfactual_pairs": {"move": "centre"}}
    with KedroSession.create(project_path=root, runtime_params=params) as session:
        with pytest.raises(Exception, match="was drawn with the move") as info:  # noqa: B017 - Kedro may wrap it
            session.run(pipeline_names=["model_training"], from_nodes=[start] if start else None)
    message = str(info.value)
    assert "counterfactual_pairs.parquet" in message and "kedro run --pipelines=counterfactual_pairs" in message
    assert "was drawn with the move 'decomposed@0.5'" in message and "ask for 'centre" in message, message
    assert sorted((root / "data" / "06_models").rglob("*")) == models
    assert {p: p.stat().st_mtime_ns for p in models} == written  # no checkpoint or model was touched


def test_the_search_pipeline_is_the_search_node_alone():
    from ccss_pipeline.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    search = pipelines["search"]
    assert [n.name for n in search.nodes] == ["model_training.tune_contrastive_loss"]
    assert "search_storage" in search.inputs() and "best_params" in search.outputs()
    assert set(search.nodes) <= set(pipelines["model_training"].nodes)


@pytest.mark.slow
def test_a_split_above_the_size_limit_is_streamed_through_search_and_final_fits(trained_project, tmp_path):
    """``streaming.max_rows_in_memory: 0``: the search's trials and the final fits read the training
    split a row group at a time (pairs drawn per batch), say so, and land near the in-memory models."""
    root = tmp_path / "streamed"
    shutil.copytree(trained_project, root)
    local = root / "conf" / "local" / "parameters_model_training.yml"
    params = yaml.safe_load(local.read_text())
    params["model_training"]["streaming"] = {"max_rows_in_memory": 0, "buffer_rows": 2048}
    local.write_text(yaml.safe_dump(params, sort_keys=False))
    proc = kedro_cli(root, "--pipelines=model_training")
    log = proc.stdout + proc.stderr
    assert "train_model_input:" in log and "streamed from" in log and "validation_model_input:" in log
    history = {
        k: json.loads((r / "data" / "08_reporting" / "training_history.json").read_text())
        for k, r in (("memory", trained_project), ("streamed", root))
    }
    assert set(history["streamed"]) == set(MODELS)
    for variant in ("baseline", "ccss"):
        auc = {k: np.mean([h[m]["best_val_auc"] for m in MODELS if f"__{variant}__" in m]) for k, h in history.items()}
        assert abs(auc["streamed"] - auc["memory"]) < 0.05, (variant, auc)
    trials = pd.read_csv(root / "data" / "08_reporting" / "optuna_trials.csv")
    assert len(trials) == N_TRIALS  # a study of its own: streamed trials draw their pairs per batch
    ccss = json.loads((root / "data" / "06_models" / "trained" / "dnn__ccss__seed42" / "model.json").read_text())
    assert (
        ccss["move"]
        == json.loads(
            (trained_project / "data" / "06_models" / "trained" / "dnn__ccss__seed42" / "model.json").read_text()
        )["move"]
    )


@pytest.mark.slow
def test_final_fits_on_two_ddp_processes_match_one(trained_project, tmp_path):
    """``distributed.nproc_per_node: 2``: the final fits run on two gloo workers started by torch's
    elastic launcher; the models land in the catalog as a one-process run's do, with its metrics."""
    root = tmp_path / "ddp"
    shutil.copytree(trained_project, root)
    shutil.rmtree(root / "data" / "06_models" / "checkpoints")
    local = root / "conf" / "local" / "parameters_model_training.yml"
    params = yaml.safe_load(local.read_text())
    params["model_training"]["distributed"] = {"nproc_per_node": 2}
    local.write_text(yaml.safe_dump(params, sort_keys=False))
    proc = kedro_cli(root, "--pipelines=model_training")
    assert "DistributedDataParallel: 2 process(es)" in proc.stdout + proc.stderr
    history = {
        k: json.loads((r / "data" / "08_reporting" / "training_history.json").read_text())
        for k, r in (("one", trained_project), ("two", root))
    }
    assert set(history["two"]) == set(MODELS)
    for model in MODELS:
        assert abs(history["two"][model]["best_val_auc"] - history["one"][model]["best_val_auc"]) < 0.01, model
        assert all(e["world_size"] == 2 for e in history["two"][model]["epochs"])
    assert sorted(p.name for p in (root / "data" / "06_models" / "trained").iterdir()) == sorted(MODELS)


def test_the_search_plots_leave_pyplots_style_as_it_was() -> None:
    """Optuna's matplotlib plots switch pyplot to its ggplot style; the report drawn later in the same run
    must look like an evaluation-only run's (found: a full run's report PNGs differed from a rerun's)."""
    import optuna
    from matplotlib import pyplot as plt

    from ccss_pipeline.pipelines.model_training.nodes import _study_plots

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("weight", 0.1, 10.0), t.suggest_float("margin", 0.0, 1.0)), n_trials=4)
    before = dict(plt.rcParams)
    plots = _study_plots(study, "dnn", 0.005)
    assert sorted(plots) == ["dnn_history.png", "dnn_importance.png", "dnn_pareto.png"]
    changed = {k for k, v in plt.rcParams.items() if str(before[k]) != str(v)}
    assert not changed, f"pyplot style changed by the search plots: {sorted(changed)[:5]}"
