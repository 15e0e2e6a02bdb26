"""Several search workers share one Optuna study on a real PostgreSQL server (issue 14).

Each worker is ``kedro run --pipelines=search`` in its own copy of the project (as on several
machines), the database URL coming from Kedro credentials. One worker is killed with SIGKILL in the
middle of a trial and started again: its trial is failed and run once more, the study ends with
exactly ``n_trials`` finished trials, none is lost or run twice, and every worker reports the same
chosen trial.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from ccss_pipeline.config import SearchConfig
from ccss_pipeline.tuning.selection import select_trial
from ccss_pipeline.tuning.workers import FINISHED, WORKER_ATTR
from tests.kedro_project import SMALL_SYNTHETIC, make_project, run_pipelines

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N_TRIALS = 8
TRAINING = {
    "backbones": ["dnn"],
    "n_seeds": 1,
    "backbone": {"hidden_units": [16], "embedding_dim": 4},
    "optimizer": {"max_epochs": 1, "device": "cpu", "batch_size": 256},
    "search": {
        "n_trials": N_TRIALS,
        "n_startup_trials": 3,
        "max_epochs": 2,
        "violation_rows": 100,
        "grid_levels": 10,
        "heartbeat_s": 1,
        "stale_after_s": 10,
        "max_retry": 2,
    },
}
PAIRS = {"warmup_epochs": 1, "shapley": {"n_samples": 100, "n_permutations": 1}}


def _worker(root: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--pipelines=search"],
        cwd=root,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _study(url: str) -> optuna.Study:
    names = optuna.study.get_all_study_names(url)
    assert len(names) == 1, names
    return optuna.load_study(study_name=names[0], storage=url)


def _wait_for_running_trial_of(url: str, pid: int, timeout: float = 180) -> int:
    """Number of the first trial worker ``pid`` is running (polled in the shared database)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if optuna.study.get_all_study_names(url):
            for t in _study(url).get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                if str(t.user_attrs.get(WORKER_ATTR, "")).endswith(f":{pid}"):
                    return t.number
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} started no trial within {timeout} s")


def test_two_workers_share_a_study_and_a_killed_workers_trial_is_run_again(tmp_path, postgres_url):
    first = make_project(
        tmp_path / "machine_a",
        local_catalog=SMALL_SYNTHETIC,
        local_parameters={"counterfactual_pairs": PAIRS, "model_training": TRAINING},
    )
    run_pipelines(first, pipeline_names=["data_validation", "feature_engineering", "counterfactual_pairs"])
    second = tmp_path / "machine_b"
    shutil.copytree(first, second)
    for root in (first, second):  # the URL only in credentials; the catalog names the entry
        local = root / "conf" / "local"
        (local / "credentials.yml").write_text(yaml.safe_dump({"optuna_db": {"url": postgres_url}}))
        catalog = yaml.safe_load((local / "catalog.yml").read_text())
        catalog["search_storage"] = {"type": "ccss_pipeline.datasets.StudyStorageDataset", "credentials": "optuna_db"}
        (local / "catalog.yml").write_text(yaml.safe_dump(catalog, sort_keys=False))

    doomed = _worker(second, tmp_path / "killed.log")
    try:
        killed_number = _wait_for_running_trial_of(postgres_url, doomed.pid)
        time.sleep(0.3)
        doomed.send_signal(signal.SIGKILL)
    finally:
        doomed.wait(timeout=60)
    workers = {"a": _worker(first, tmp_path / "a.log"), "b": _worker(second, tmp_path / "b.log")}
    for name, proc in workers.items():
        code = proc.wait(timeout=600)
        assert code == 0, (tmp_path / f"{name}.log").read_text()[-3000:]

    study = _study(postgres_url)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(finished) == N_TRIALS, [(t.number, t.state.name) for t in trials]
    # failed: the killed worker's trial, and only trials two workers asked for at once (never run)
    assert killed_number in {t.number for t in failed}
    assert all(t.number == killed_number or t.user_attrs.get("surplus") for t in failed), [
        (t.number, t.user_attrs) for t in failed
    ]
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    killed = next(t for t in trials if t.number == killed_number)
    (rerun,) = [t for t in finished if t.system_attrs.get("failed_trial") == killed_number]
    assert rerun.params == killed.params and rerun.number > killed_number
    # no trial ran twice: every finished trial has parameters of its own
    assert len({tuple(sorted(t.params.items())) for t in finished}) == N_TRIALS

    search = SearchConfig(**TRAINING["search"])
    chosen, _ = select_trial(trials, search.max_violation, search.max_edge_violation)
    reports = [json.loads((root / "data" / "06_models" / "best_params.json").read_text()) for root in (first, second)]
    assert reports[0] == reports[1]  # the same result whichever worker finished last
    assert reports[0]["dnn"]["source"] == f"trial {chosen.number}"
    assert reports[0]["dnn"]["n_trials"] == len(trials)
    assert "password" not in (tmp_path / "a.log").read_text()
