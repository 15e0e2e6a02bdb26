"""The small trained project several test modules share: its settings, how to build it, and helpers
to run Kedro on it (the session fixture ``trained_project`` in tests/conftest.py builds it once)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from tests.kedro_project import make_project

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
        "n_seeds": 2,
        "search": {
            "n_trials": N_TRIALS,
            "n_startup_trials": 1,
            "max_epochs": 1,
            "storage_path": "data/06_models/optuna.db",
            "violation_rows": 200,
            "grid_levels": 30,
            "pruner": {"enabled": True, "n_startup_trials": 1, "n_warmup_steps": 1},
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
LOCAL_EVALUATION = {"evaluation": {"device": "cpu", "max_rows": 1000, "grid_rows": 300, "grid_levels": 50}}
MODELS = ("dnn__baseline__seed42", "dnn__baseline__seed43", "dnn__ccss__seed42", "dnn__ccss__seed43")


def kedro_env() -> dict[str, str]:
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "False"}


def kedro_cli(root: Path, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [KEDRO, "run", *args], cwd=root, env=kedro_env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"kedro run {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def make_training_project(root: Path) -> Path:
    make_project(root, local_catalog=LOCAL_CATALOG)
    local = root / "conf" / "local"
    (local / "parameters_model_training.yml").write_text(yaml.safe_dump(LOCAL_TRAINING, sort_keys=False))
    (local / "parameters_counterfactual_pairs.yml").write_text(yaml.safe_dump(LOCAL_PAIRS, sort_keys=False))
    (local / "parameters_evaluation.yml").write_text(yaml.safe_dump(LOCAL_EVALUATION, sort_keys=False))
    return root


def is_png(path: Path) -> bool:
    import matplotlib.image as mpimg

    if not path.is_file() or path.read_bytes()[:8] != PNG_MAGIC:
        return False
    image = mpimg.imread(path)
    return image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


@dataclass(frozen=True)
class TrainedProject:
    """The project after ``kedro run --pipeline=train``, and its trials table as that run wrote it."""

    root: Path
    trials: pd.DataFrame


def build_trained_project(folder: Path) -> TrainedProject:
    root = make_training_project(folder / "project")
    kedro_cli(root, "--pipeline=train")
    return TrainedProject(root, pd.read_csv(root / "data" / "08_reporting" / "optuna_trials.csv"))
