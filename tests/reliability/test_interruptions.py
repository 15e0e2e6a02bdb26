"""Interruptions, tested with real ``kedro run`` subprocesses and a real SIGKILL.

- the Optuna search killed mid-trial resumes the same SQLite study with its finished trials kept;
- the final training killed mid-run resumes from its last checkpoint and ends with exactly the model
  of an uninterrupted run (CPU);
- a failed node leaves the outputs of earlier nodes intact, and ``--from-nodes`` finishes the run.

A module fixture prepares the model-ready data once (tiny synthetic source); each test copies that
``data/`` folder into a fresh project whose ``conf/local`` sets the training budget. Subprocesses run
with one CPU thread (``OMP_NUM_THREADS=1``: bitwise-reproducible and fast on a shared machine) and
their output goes to a log file that the test reads incrementally to find the moment to kill.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccss_pipeline.tuning.selection import select_trial
from tests.kedro_project import REPO, make_project

pytestmark = pytest.mark.slow

KEDRO = str(Path(sys.executable).with_name("kedro"))
TINY_SOURCE = {
    "raw_source": {
        "type": "CachedDataset",
        "dataset": {
            "type": "ccss_pipeline.datasets.SyntheticSourceDataset",
            "n_users": 200,
            "n_videos": 200,
            "n_days": 6,
            "impressions_per_user_day": 6.0,
            "seed": 3,
        },
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}},
    "loggers": {"kedro": {"level": "INFO"}, "ccss_pipeline": {"level": "INFO"}, "optuna": {"level": "INFO"}},
    "root": {"level": "WARNING", "handlers": ["console"]},
}
CHECKPOINTS = Path("data") / "06_models" / "checkpoints"
STUDY_DB = Path("data") / "06_models" / "optuna.db"


# ------------------------------------------------------------------------------------------ helpers
def _base(group: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "conf" / "base" / f"parameters_{group}.yml").read_text())[group]


def _merge(tree: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(tree)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _write_params(root: Path, **groups: dict[str, Any]) -> None:
    """Full copies of the base groups with ``groups`` merged in (env files replace base keys whole)."""
    for group, update in groups.items():
        params = {group: _merge(_base(group), update)}
        (root / "conf" / "local" / f"parameters_{group}.yml").write_text(yaml.safe_dump(params, sort_keys=False))


def _training(final_epochs: int, n_trials: int = 1, search_epochs: int = 1) -> dict[str, Any]:
    return {
        "backbones": ["dnn"],
        "backbone": {"hidden_units": [64, 32]},
        "optimizer": {"batch_size": 256, "max_epochs": final_epochs, "patience": 100, "device": "cpu", "seed": 5},
        "n_seeds": 1,
        "search": {
            "n_trials": n_trials,
            "n_startup_trials": 1,
            "max_epochs": search_epochs,
            "violation_rows": 100,
            "grid_levels": 20,
            "pruner": {"enabled": False},
        },
    }


def _env(root: Path) -> dict[str, str]:
    logging_yml = root / "test_logging.yml"
    logging_yml.write_text(yaml.safe_dump(LOGGING))
    return dict(
        os.environ,
        KEDRO_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="False",
        KEDRO_LOGGING_CONFIG=str(logging_yml),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES="",
    )


def _start(root: Path, args: list[str], log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    try:
        return subprocess.Popen(
            [KEDRO, "run", *args],
            cwd=root,
            env=_env(root),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        handle.close()  # the child keeps its own descriptor


def _run(root: Path, args: list[str], log: Path, timeout: float = 240) -> tuple[int, str]:
    proc = _start(root, args, log)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return rc, log.read_text(errors="replace")


def _kill_when(proc: subprocess.Popen, log: Path, ready: Callable[[str], bool], timeout: float = 240) -> str:
    """Read ``log`` as it grows; SIGKILL the run as soon as ``ready(text so far)``; return the text."""
    text, deadline = "", time.monotonic() + timeout
    with log.open("rb") as handle:
        while time.monotonic() < deadline:
            text += handle.read().decode(errors="replace")
            if ready(text):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return text
            if proc.poll() is not None:
                text += handle.read().decode(errors="replace")
                pytest.fail(f"the run ended (rc {proc.returncode}) before the kill point:\n{text[-4000:]}")
            time.sleep(0.02)
    proc.kill()
    proc.wait()
    pytest.fail(f"kill point not reached in {timeout}s:\n{text[-4000:]}")


def _project(tmp_path: Path, prepared: Path, name: str) -> Path:
    root = make_project(tmp_path / name, local_catalog=TINY_SOURCE)
    shutil.rmtree(root / "data")
    shutil.copytree(prepared / "data", root / "data")
    _write_params(root, feature_engineering={"n_buckets": 8}, counterfactual_pairs=PAIRS)
    return root


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "data").rglob("*"))
        if p.is_file()
    }


PAIRS = {"warmup_epochs": 1, "shapley": {"n_samples": 200, "n_permutations": 2}}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Model-ready data + counterfactual pairs of a tiny synthetic source (one real ``kedro run``)."""
    root = make_project(tmp_path_factory.mktemp("prepared") / "project", local_catalog=TINY_SOURCE)
    _write_params(root, feature_engineering={"n_buckets": 8}, counterfactual_pairs=PAIRS)
    rc, text = _run(root, ["--pipelines=data_validation,feature_engineering,counterfactual_pairs"], root / "prep.log")
    assert rc == 0, text[-4000:]
    assert (root / "data" / "05_model_input" / "counterfactual_pairs.parquet").is_file()
    return root


# ------------------------------------------------------------------------------ (a) the Optuna search
def study_trials(db: Path) -> list[Any]:
    import optuna

    storage = f"sqlite:///{db}"
    (name,) = optuna.get_all_study_names(storage=storage)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _finished(db: Path) -> tuple[str, list[tuple[int, dict[str, float], float]], list[str]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db}"
    names = optuna.get_all_study_names(storage=storage)
    assert len(names) == 1, names
    study = optuna.load_study(study_name=names[0], storage=storage)
    done = [
        (t.number, dict(t.params), tuple(t.values)) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
    ]
    return names[0], done, [t.state.name for t in study.trials]


def test_killed_search_resumes_the_same_study(tmp_path, prepared):
    root = _project(tmp_path, prepared, "search")
    _write_params(root, model_training=_training(final_epochs=1, n_trials=3, search_epochs=4))
    log = tmp_path / "search-killed.log"

    def mid_second_trial(text: str) -> bool:  # trial 0 committed, and trial 1 is training
        head, sep, tail = text.partition("Trial 0 finished")
        return bool(sep) and "epoch 1 loss" in tail

    _kill_when(_start(root, ["--nodes=model_training.tune_contrastive_loss"], log), log, mid_second_trial)
    name, before, states = _finished(root / STUDY_DB)
    assert len(before) >= 1 and "RUNNING" in states, states  # killed mid-trial
    assert not (root / "data" / "06_models" / "best_params.json").exists()

    rc, text = _run(root, ["--nodes=model_training.tune_contrastive_loss"], tmp_path / "search-rerun.log")
    assert rc == 0, text[-4000:]
    assert "left running by an interrupted search as failed" in text
    assert f"{len(before)} finished trial(s), running {3 - len(before)} more" in text
    name_after, after, states_after = _finished(root / STUDY_DB)
    assert name_after == name  # the same study, not a new one
    assert after[: len(before)] == before  # same numbers, params and values
    assert len(after) == 3 and len({n for n, _, _ in after}) == 3
    assert "RUNNING" not in states_after and states_after.count("FAIL") == 1
    best = json.loads((root / "data" / "06_models" / "best_params.json").read_text())["dnn"]
    chosen, _ = select_trial(study_trials(root / STUDY_DB), best["max_violation"], best["max_edge_violation"])
    assert chosen is not None and best["source"] == f"trial {chosen.number}"
    assert (best["val_auc"], best["val_wrong_step_share"]) == tuple(chosen.values)


# ------------------------------------------------------------------------------ (b) the final training
BEST = {
    "dnn": {
        "loss": "margin",
        "weight": 1.5,
        "margin": 0.02,
        "temperature": 0.1,
        "learning_rate": 0.002,
        "study": "fixed",
        "n_trials": 0,
        "source": "test",
        "val_auc": None,
        "val_wrong_step_share": None,
        "feasible": None,
        "max_violation": 0.005,
    }
}
MODELS = {"dnn__baseline__seed5", "dnn__ccss__seed5"}


def _best_for(root: Path) -> dict[str, Any]:
    """``BEST`` as the search records it: with the fingerprint of the project's feature spec."""
    from ccss_pipeline.lineage import SPEC_KEY
    from ccss_pipeline.spec import FeatureSpec

    spec = FeatureSpec.from_dict(json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text()))
    return {name: {**params, SPEC_KEY: spec.fingerprint} for name, params in BEST.items()}


def _state_dicts(root: Path) -> dict[str, dict[str, Any]]:
    import torch

    trained = root / "data" / "06_models" / "trained"
    return {
        sub.name: torch.load(sub / "model.pt", map_location="cpu", weights_only=True)
        for sub in sorted(trained.iterdir())
        if sub.is_dir()
    }


def test_killed_training_resumes_to_the_same_model(tmp_path, prepared):
    import torch

    roots = {}
    for name in ("killed", "straight"):
        root = _project(tmp_path, prepared, name)
        _write_params(root, model_training=_training(final_epochs=8))
        (root / "data" / "06_models" / "best_params.json").write_text(json.dumps(_best_for(root)))
        roots[name] = root
    args = ["--nodes=model_training.train_ccss_and_baseline"]
    # the uninterrupted run goes on beside the killed one (it shares nothing with it)
    straight_log = tmp_path / "train-straight.log"
    straight_proc = _start(roots["straight"], args, straight_log)

    try:
        killed = roots["killed"]
        ccss_checkpoint = killed / CHECKPOINTS / "dnn__ccss__seed5" / "checkpoint.pt"
        log = tmp_path / "train-killed.log"
        _kill_when(_start(killed, args, log), log, lambda text: ccss_checkpoint.exists())
        checkpoint = torch.load(ccss_checkpoint, map_location="cpu", weights_only=True)
        assert 1 <= checkpoint["epoch"] < 8  # killed mid-run, after at least one checkpoint
        assert not (killed / "data" / "06_models" / "trained").exists()
        rc, text = _run(killed, args, tmp_path / "train-rerun.log")
        assert rc == 0, text[-4000:]
        assert "resumed from" in text and "dnn__ccss__seed5" in text

        rc = straight_proc.wait(timeout=240)
        assert rc == 0, straight_log.read_text(errors="replace")[-4000:]
    finally:
        if straight_proc.poll() is None:
            straight_proc.kill()
            straight_proc.wait()

    resumed, straight = _state_dicts(killed), _state_dicts(roots["straight"])
    assert set(resumed) == set(straight) == MODELS
    for model in straight:
        assert resumed[model].keys() == straight[model].keys()
        for key, tensor in straight[model].items():
            assert torch.equal(resumed[model][key], tensor), f"{model}: {key} differs after resume"
    history = {
        n: json.loads((r / "data" / "08_reporting" / "training_history.json").read_text()) for n, r in roots.items()
    }
    for model in straight:
        strip = lambda h: [(e["epoch"], e["loss"], e["val_auc"]) for e in h["epochs"]]  # noqa: E731
        assert strip(history["killed"][model]) == strip(history["straight"][model])


# ------------------------------------------------------------------------------ (c) a failed node
def test_failed_node_keeps_earlier_outputs_and_from_nodes_finishes(tmp_path, prepared):
    root = _project(tmp_path, prepared, "failing")
    _write_params(root, model_training=_training(final_epochs=2))
    before = _digests(root)
    trained = root / "data" / "06_models" / "trained"
    trained.write_text("a file where the model folder must go: the save fails")  # e.g. a full or broken disk

    rc, text = _run(root, ["--pipelines=model_training"], tmp_path / "failing.log")
    assert rc != 0 and "exists and is not a folder" in text, text[-4000:]
    assert "--from-nodes" in text  # Kedro says where to resume
    after = _digests(root)
    assert {k: v for k, v in after.items() if k in before} == before  # inputs untouched
    best_params = root / "data" / "06_models" / "best_params.json"
    best = json.loads(best_params.read_text())  # the earlier node's output is complete and usable
    assert best["dnn"]["n_trials"] == 1 and (root / "data" / "08_reporting" / "optuna_trials.csv").is_file()
    leftovers = [p for p in (root / "data").rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []
    assert not (root / "data" / "08_reporting" / "training_history.json").exists()

    trained.unlink()
    kept = {k: v for k, v in _digests(root).items() if "checkpoints" not in k}
    rc, text = _run(root, ["--from-nodes=model_training.train_ccss_and_baseline"], tmp_path / "rerun.log")
    assert rc == 0, text[-4000:]
    assert MODELS == {p.name for p in trained.iterdir()}
    final = _digests(root)
    assert all(final[k] == v for k, v in kept.items()), "the rerun must not rewrite the earlier outputs"
