"""The counterfactual_pairs and model_training pipelines, end to end through Kedro (the ``train`` pipeline).

One small synthetic project is trained once per test session (``kedro run --pipeline=train`` as a
subprocess, the way a user runs it) and shared with tests/pipelines/test_evaluation_pipeline.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ccss_pipeline.spec import FeatureSpec
from tests.kedro_project import make_project, run_pipelines

KEDRO = str(Path(sys.executable).with_name("kedro"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_TRIALS = 2

LOCAL_CATALOG = {
    "raw_source": {
        "type": "CachedDataset",
        "dataset": {
            "type": "ccss_pipeline.datasets.SyntheticSourceDataset",
            "n_users": 300,
            "n_videos": 300,
            "n_days": 8,
            "impressions_per_user_day": 3.0,
            "seed": 5,
        },
    }
}
LOCAL_TRAINING = {
    "model_training": {
        "backbones": ["dnn"],
        "backbone": {"embedding_dim": 4, "hidden_units": [32, 16]},
        "optimizer": {"batch_size": 512, "max_epochs": 2, "patience": 2, "seed": 42, "device": "cpu"},
        "contrastive": {"loss": "margin", "weight": 1.0, "margin": 0.02},
        "checkpoint_dir": "data/06_models/checkpoints",
        "search": {
            "n_trials": N_TRIALS,
            "max_epochs": 1,
            "storage_path": "data/06_models/optuna.db",
            "violation_rows": 500,
            "pruner": {"enabled": True, "n_startup_trials": 2, "n_warmup_steps": 1},
        },
    }
}
LOCAL_PAIRS = {
    "counterfactual_pairs": {
        "warmup_epochs": 1,
        "shapley": {"n_samples": 200, "n_permutations": 2, "batch_size": 4096},
        "seed": 11,
    }
}
LOCAL_EVALUATION = {"evaluation": {"device": "cpu", "max_rows": 1000}}

_CACHE: dict[str, object] = {}


def kedro_env() -> dict[str, str]:
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "False"}


def kedro_cli(root: Path, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run([KEDRO, "run", *args], cwd=root, env=kedro_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"kedro run {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def make_training_project(root: Path) -> Path:
    make_project(root, local_catalog=LOCAL_CATALOG)
    local = root / "conf" / "local"
    (local / "parameters_model_training.yml").write_text(yaml.safe_dump(LOCAL_TRAINING, sort_keys=False))
    (local / "parameters_counterfactual_pairs.yml").write_text(yaml.safe_dump(LOCAL_PAIRS, sort_keys=False))
    (local / "parameters_evaluation.yml").write_text(yaml.safe_dump(LOCAL_EVALUATION, sort_keys=False))
    return root


def trained_project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared project after ``kedro run --pipeline=train`` (built once per session)."""
    if "root" not in _CACHE:
        root = make_training_project(tmp_path_factory.mktemp("train") / "project")
        kedro_cli(root, "--pipeline=train")
        _CACHE["root"] = root
        _CACHE["trials"] = pd.read_csv(root / "data" / "08_reporting" / "optuna_trials.csv")
    return _CACHE["root"]  # type: ignore[return-value]


@pytest.fixture
def trained_project(tmp_path_factory) -> Path:
    return trained_project_root(tmp_path_factory)


def is_png(path: Path) -> bool:
    import matplotlib.image as mpimg

    if not path.is_file() or path.read_bytes()[:8] != PNG_MAGIC:
        return False
    image = mpimg.imread(path)
    return image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


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
    spec = _spec(trained_project)
    train = pd.read_parquet(trained_project / "data" / "05_model_input" / "train.parquet")
    pairs = pd.read_parquet(trained_project / "data" / "05_model_input" / "counterfactual_pairs.parquet")
    assert {"row", "feature", "up_bucket", "up_dense", "down_bucket", "down_dense", "f_is_up"} <= set(pairs.columns)
    assert 0.5 * len(train) < len(pairs) <= len(train)
    assert pairs["row"].is_unique and pairs["row"].between(0, len(train) - 1).all()
    directed = set(spec.directed_indices())
    assert set(pairs["feature"].unique()) <= directed

    rows, k = pairs["row"].to_numpy(), pairs["feature"].to_numpy()
    bucket = train[[f.bucket_column for f in spec.numerical]].to_numpy()[rows, k]
    dense = train[[f.dense_column for f in spec.numerical]].to_numpy(np.float32)[rows, k]
    nb = np.array([spec.numerical[i].n_buckets for i in k])
    direction = np.array([spec.numerical[i].direction for i in k])
    assert (bucket < nb).all()  # rows whose drawn feature is missing get no pair
    up, down = pairs["up_bucket"].to_numpy(), pairs["down_bucket"].to_numpy()
    np.testing.assert_array_equal(up, np.where(bucket + 1 < nb, bucket + 1, bucket))
    np.testing.assert_array_equal(down, np.where(bucket >= 1, bucket - 1, bucket))
    centre_up = np.array([spec.numerical[i].centres_dense[b] for i, b in zip(k, up)], np.float32)
    centre_down = np.array([spec.numerical[i].centres_dense[b] for i, b in zip(k, down)], np.float32)
    np.testing.assert_allclose(pairs["up_dense"], np.where(bucket + 1 < nb, centre_up, dense), rtol=1e-6)
    np.testing.assert_allclose(pairs["down_dense"], np.where(bucket >= 1, centre_down, dense), rtol=1e-6)
    label = train["label"].to_numpy()[rows]
    s = np.where(label == 1, direction, -direction)
    np.testing.assert_array_equal(pairs["f_is_up"].to_numpy(), s == 1)


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
    assert {"value", "params_weight", "params_margin", "state"} <= set(trials.columns)
    assert "params_temperature" not in trials.columns  # margin loss has no τ
    for name in ("optuna_history.png", "optuna_importance.png"):
        assert is_png(reporting / name), name
    best = json.loads((models / "best_params.json").read_text())
    assert best["n_trials"] == N_TRIALS and best["loss"] == "margin"
    complete = trials[trials["state"] == "COMPLETE"]
    if len(complete):
        top = complete.sort_values(["value", "number"], ascending=[False, True]).iloc[0]
        assert best["source"] == f"trial {int(top['number'])}"
        assert best["weight"] == pytest.approx(top["params_weight"]) and best["margin"] == pytest.approx(top["params_margin"])
        assert 0.1 <= best["weight"] <= 10.0 and 1e-3 <= best["margin"] <= 0.1
    else:
        assert best["source"] == "defaults"


@pytest.mark.slow
def test_trained_models(trained_project):
    from ccss_pipeline.datasets.models import ModelCollectionDataset
    from ccss_pipeline.model.persistence import spec_hash

    trained = trained_project / "data" / "06_models" / "trained"
    assert sorted(p.name for p in trained.iterdir()) == ["dnn__baseline", "dnn__ccss"]
    for name in ("dnn__baseline", "dnn__ccss"):
        assert (trained / name / "model.pt").is_file() and (trained / name / "model.json").is_file()
    best = json.loads((trained_project / "data" / "06_models" / "best_params.json").read_text())
    cfg = {n: json.loads((trained / n / "model.json").read_text()) for n in ("dnn__baseline", "dnn__ccss")}
    assert cfg["dnn__baseline"]["contrastive"]["weight"] == 0
    assert cfg["dnn__ccss"]["contrastive"]["weight"] == pytest.approx(best["weight"]) and best["weight"] > 0
    assert cfg["dnn__ccss"]["contrastive"]["margin"] == pytest.approx(best["margin"])
    assert cfg["dnn__baseline"]["variant"] == "baseline" and cfg["dnn__ccss"]["variant"] == "ccss"
    # identical settings apart from the contrastive weight
    assert cfg["dnn__baseline"]["optimizer"] == cfg["dnn__ccss"]["optimizer"]
    assert cfg["dnn__baseline"]["backbone"] == cfg["dnn__ccss"]["backbone"]
    assert cfg["dnn__ccss"]["optimizer"]["max_epochs"] == 2
    assert cfg["dnn__ccss"]["spec_hash"] == spec_hash(_spec(trained_project))
    loaded = ModelCollectionDataset(str(trained)).load()
    assert set(loaded) == {"dnn__baseline", "dnn__ccss"}
    history = json.loads((trained_project / "data" / "08_reporting" / "training_history.json").read_text())
    assert set(history) == {"dnn__baseline", "dnn__ccss"}
    assert all(0.5 < h["best_val_auc"] <= 1 for h in history.values())


@pytest.mark.slow
def test_rerun_with_pipelines_option_resumes_the_study(trained_project):
    """``kedro run --pipelines=train`` (the plural option) reruns and finds the study complete."""
    before = _CACHE["trials"]
    kedro_cli(trained_project, "--pipelines=train")
    after = pd.read_csv(trained_project / "data" / "08_reporting" / "optuna_trials.csv")
    assert len(after) == N_TRIALS
    pd.testing.assert_frame_equal(
        after[["number", "value", "params_weight", "params_margin", "state"]],
        before[["number", "value", "params_weight", "params_margin", "state"]],
    )
    best = json.loads((trained_project / "data" / "06_models" / "best_params.json").read_text())
    assert best["n_trials"] == N_TRIALS
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
