"""Issue 11, items 3, 5 (search side), 6, 7, 14 and 15: artifacts and runs that used to go wrong silently.

Each test failed on the code before issue 11: a pair table of a 16-bucket spec was used beside an
8-bucket spec; a 4-epoch checkpoint was reused for a 2-epoch fit; a search whose every trial failed
fell back to defaults with exit 0; one 1e12 squashed its feature; a second ``kedro run`` failed the
first run's live trial; a corrupt checkpoint, a truncated ``optuna.db`` and a full disk raised
errors naming no file; ``.tmp-*`` files of a killed save were never swept.
"""

from __future__ import annotations

import errno
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, FeatureConfig, OptimizerConfig, SchemaConfig
from ccss_pipeline.datasets.atomic import AtomicDataset
from ccss_pipeline.encoding import DENSE_CLIP
from ccss_pipeline.files import ArtifactWriteError, sweep_stale_temporaries
from ccss_pipeline.lineage import SPEC_KEY, StaleArtifactError, require_spec, require_table_spec
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.model.trainer import CHECKPOINT_NAME, train_model
from ccss_pipeline.run_lock import ProjectBusyError, ProjectLock
from ccss_pipeline.spec import ModelInputs
from ccss_pipeline.tuning.search import SearchData, SearchFailedError, run_search
from ccss_pipeline.tuning.study import open_study
from ccss_pipeline.tuning.study_storage import SearchStorageError
from ccss_pipeline.tuning.workers import WORKER_ATTR
from tests.kedro_project import SMALL_SYNTHETIC, make_project, run_pipelines
from tests.model.conftest import make_inputs, make_spec
from tests.support.configs import tiny_training
from tests.support.frame_stages import fit_feature_spec, to_model_input

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY_TRAINING = {
    "backbones": ["dnn"],
    "n_seeds": 1,
    "backbone": {"hidden_units": [8], "embedding_dim": 4},
    "optimizer": {"max_epochs": 1, "device": "cpu", "batch_size": 256},
    "search": {"n_trials": 1, "max_epochs": 1, "violation_rows": 100, "grid_levels": 10},
}
TINY_PAIRS = {"warmup_epochs": 1, "shapley": {"n_samples": 100, "n_permutations": 1}}


# ----------------------------------------------------------------------- 3. stale intermediates
def test_a_pair_table_of_another_spec_is_refused_end_to_end(tmp_path):
    """feature_engineering rerun with 8 buckets, then model_training alone: the 16-bucket pair table
    is refused with what is stale and the command that rebuilds it (it used to train, exit 0)."""
    root = make_project(
        tmp_path / "project",
        local_catalog=SMALL_SYNTHETIC,
        local_parameters={"counterfactual_pairs": TINY_PAIRS, "model_training": TINY_TRAINING},
    )
    run_pipelines(root, pipeline_names=["data_validation", "feature_engineering", "counterfactual_pairs"])
    pairs_file = root / "data" / "05_model_input" / "counterfactual_pairs.parquet"
    assert pd.read_parquet(pairs_file).attrs.get(SPEC_KEY), "the pair table records its spec"
    run_pipelines(
        root, pipeline_names=["feature_engineering"], runtime_params={"feature_engineering": {"n_buckets": 8}}
    )
    with pytest.raises(Exception) as info:
        run_pipelines(root, pipeline_names=["model_training"], runtime_params={"feature_engineering": {"n_buckets": 8}})
    message = str(info.value)
    assert "'counterfactual_pairs' was built for another feature spec" in message, message
    assert "kedro run --pipelines=counterfactual_pairs" in message, message
    assert not (root / "data" / "06_models" / "best_params.json").exists()


def test_every_spec_dependent_input_is_checked():
    spec = make_spec()
    other = make_spec()
    other = type(other)(categorical=other.categorical, numerical=other.numerical[:3])
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(StaleArtifactError, match="records no feature-spec fingerprint"):
        require_table_spec("train_model_input", frame, spec, "feature_engineering")
    frame.attrs[SPEC_KEY] = other.fingerprint
    with pytest.raises(StaleArtifactError, match=r"built for another feature spec.*--pipelines=feature_engineering"):
        require_table_spec("train_model_input", frame, spec, "feature_engineering")
    require_spec("feature_importance", {SPEC_KEY: spec.fingerprint}, spec, "counterfactual_pairs")


def _fit(spec, train, valid, ckpt: Path | None, max_epochs: int):
    return train_model(
        spec,
        train,
        valid,
        BackboneConfig(hidden_units=[8], embedding_dim=4),
        ContrastiveConfig(weight=0.0),
        OptimizerConfig(max_epochs=max_epochs, patience=10, batch_size=256, device="cpu"),
        checkpoint_dir=ckpt,
    )


def test_a_checkpoint_that_trained_longer_is_not_reused_for_a_shorter_budget(tmp_path):
    spec = make_spec()
    train, valid = make_inputs(spec, 1500, seed=1), make_inputs(spec, 400, seed=2)
    _fit(spec, train, valid, tmp_path / "ck", max_epochs=3)
    shorter = _fit(spec, train, valid, tmp_path / "ck", max_epochs=2)
    fresh = _fit(spec, train, valid, None, max_epochs=2)
    assert len(shorter.history) == 2
    for key, value in fresh.model.state_dict().items():
        assert torch.equal(value, shorter.model.state_dict()[key]), key
    # a longer budget still continues the checkpoint exactly as one uninterrupted run
    longer = _fit(spec, train, valid, tmp_path / "ck", max_epochs=4)
    straight = _fit(spec, train, valid, None, max_epochs=4)
    assert [h["epoch"] for h in longer.history] == [1, 2, 3, 4]
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, longer.model.state_dict()[key]), key


# ---------------------------------------------------------------------------- 14. files named
def test_a_corrupt_checkpoint_is_named_and_the_fit_starts_over(tmp_path, caplog):
    spec = make_spec()
    train, valid = make_inputs(spec, 600, seed=1), make_inputs(spec, 200, seed=2)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / CHECKPOINT_NAME).write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING, logger="ccss_pipeline.model.trainer"):
        result = _fit(spec, train, valid, tmp_path / "ck", max_epochs=1)
    assert len(result.history) == 1
    assert str(tmp_path / "ck" / CHECKPOINT_NAME) in caplog.text and "cannot be read" in caplog.text
    assert torch.load(tmp_path / "ck" / CHECKPOINT_NAME, weights_only=True)["epoch"] == 1  # replaced


@pytest.mark.parametrize(
    "content",
    [b"not a database at all", b"SQLite format 3\x00" + b"\x00\x10" + b"\xff" * 90],
    ids=["foreign-file", "truncated-sqlite"],
)
def test_a_broken_study_database_is_named(tmp_path, content):
    db = tmp_path / "data" / "optuna.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(content)
    with pytest.raises(SearchStorageError, match=rf"{db}.*(not an SQLite database|cannot be)"):
        open_study(tiny_training(storage_path="data/optuna.db"), make_spec(), "digest", "dnn", storage_root=tmp_path)


def test_a_full_disk_names_the_checkpoint(tmp_path, monkeypatch):
    spec = make_spec()
    train, valid = make_inputs(spec, 300, seed=1), make_inputs(spec, 100, seed=2)

    def full(obj, f, *args, **kwargs):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
            "data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ArtifactWriteError) as info:
        _fit(spec, train, valid, tmp_path / "ck", max_epochs=1)
    assert str(tmp_path / "ck" / CHECKPOINT_NAME) in str(info.value) and "disk is full" in str(info.value)
    assert not list((tmp_path / "ck").glob(".*tmp*")), "no temporary left behind"


def test_a_full_disk_names_the_dataset_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "table.parquet"
    dataset = AtomicDataset({"type": "pandas.ParquetDataset", "filepath": str(target)})
    dataset.save(pd.DataFrame({"a": [1, 2]}))

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_space)
    with pytest.raises(Exception) as info:
        dataset.save(pd.DataFrame({"a": [3]}))
    assert str(target) in str(info.value) and "disk is full" in str(info.value)
    monkeypatch.undo()
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]


# ------------------------------------------------------------------------ 15. stale temporaries
def test_temporaries_of_a_killed_save_are_swept_at_the_next_save(tmp_path):
    target = tmp_path / "table.parquet"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
        ).stdout.strip()
        stale = [tmp_path / f".table.parquet.tmp-{dead}-0a1b2c3d", tmp_path / ".table.parquet.tmp-deadbeef"]
        live = tmp_path / f".table.parquet.tmp-{sleeper.pid}-0a1b2c3d"  # a save still in progress elsewhere
        for path in [*stale, live]:
            path.write_bytes(b"half")
        (tmp_path / f".table.parquet.old-{dead}-00000000").mkdir()
        AtomicDataset({"type": "pandas.ParquetDataset", "filepath": str(target)}).save(pd.DataFrame({"a": [1]}))
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted([live.name, "table.parquet"]), left
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sweep_stale_temporaries(target) == [live]


# ------------------------------------------------------------------------- 5. every trial failed
def test_a_search_whose_every_trial_fails_is_an_error_not_defaults(tmp_path):
    spec = make_spec()
    train, valid = make_inputs(spec, 600, seed=1), make_inputs(spec, 200, seed=2)
    valid = ModelInputs(
        cat=valid.cat, dense=valid.dense, bucket=valid.bucket, label=np.zeros_like(valid.label), group=valid.group
    )  # one class: every validation AUC is NaN
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, np.ones(3) / 3, seed=0, move="centre")
    with pytest.raises(SearchFailedError, match="every trial failed"):
        run_search(SearchData(spec, train, valid, pairs), tiny_training(n_trials=2), "dnn", storage_root=tmp_path)


# ------------------------------------------------------------------------------- 6. outliers
def _outlier_frame(values: np.ndarray) -> tuple[pd.DataFrame, SchemaConfig]:
    n = len(values)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user": rng.integers(0, 20, n).astype(str),
            "item": rng.integers(0, 20, n).astype(str),
            "label": rng.integers(0, 2, n).astype(np.int8),
            "event_ts": np.arange(n),
            "group_id": 0,
            "x": values,
        }
    )
    schema = SchemaConfig(
        source="table",
        label="y",
        user="u",
        item="i",
        numerical=[{"name": "x", "direction": 1, "transform": "identity"}],
    )
    return frame, schema


def test_one_huge_value_does_not_squash_its_feature():
    values = np.random.default_rng(1).normal(50.0, 10.0, 5000)
    values[17] = 1e12
    frame, schema = _outlier_frame(values)
    spec = fit_feature_spec(frame, schema, FeatureConfig())
    dense = to_model_input(frame, spec)["num__x"].to_numpy()
    ordinary = np.delete(dense, 17)
    assert 0.8 < ordinary.std() < 1.2, ordinary.std()  # it was ~1e-8: every row the same input
    assert dense[17] == pytest.approx(DENSE_CLIP)


def test_values_that_overflow_name_the_column():
    values = np.random.default_rng(1).normal(0.0, 1.0, 5000)
    values[[3, 4]] = [1.7e308, -1.7e308]
    frame, schema = _outlier_frame(values)
    with pytest.raises(ValueError, match=r"numerical feature 'x'.*overflow"):
        fit_feature_spec(frame, schema, FeatureConfig(outlier_quantile=0.0))
    spec = fit_feature_spec(frame, schema, FeatureConfig())  # winsorized scaling copes with them
    assert np.isfinite(to_model_input(frame, spec)["num__x"].to_numpy()).all()


# -------------------------------------------------------------------------- 7. concurrent runs
def _holder(root: Path) -> subprocess.Popen:
    code = (
        "import sys, time; from ccss_pipeline.run_lock import ProjectLock; "
        f"lock = ProjectLock({str(root)!r}); lock.acquire({{'pipelines': 'holder'}}); print('held', flush=True); "
        "time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_the_same_project_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    holder = _holder(root)
    try:
        with pytest.raises(Exception) as info:
            run_pipelines(root, pipeline_names=["data_validation"])
        message = str(info.value)
        assert isinstance(info.value, ProjectBusyError) or "another kedro run" in message
        assert f"pid {holder.pid}" in message and "pipelines holder" in message, message
        assert not (root / "data" / "02_intermediate" / "interactions.parquet").exists()
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        holder.wait()
    run_pipelines(root, pipeline_names=["data_validation"])
    assert (root / "data" / "02_intermediate" / "interactions.parquet").exists()
    lock = ProjectLock(root)
    lock.acquire()  # released after the run
    lock.release()


def test_a_live_runs_trial_is_kept_and_a_dead_ones_is_failed(tmp_path):
    spec, training = make_spec(), tiny_training()
    study = open_study(training, spec, "digest", "dnn", storage_root=tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = study.ask()
        live.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{sleeper.pid}")
        remote = study.ask()  # another machine's worker with a fresh heartbeat
        remote.set_user_attr(WORKER_ATTR, "some-other-host:4242")
        study._storage.record_heartbeat(remote._trial_id)
        reopened = open_study(training, spec, "digest", "dnn", storage_root=tmp_path)
        assert [t.state.name for t in reopened.trials] == ["RUNNING", "RUNNING"]
    finally:
        sleeper.kill()
        sleeper.wait()
    reopened = open_study(training, spec, "digest", "dnn", storage_root=tmp_path)
    assert [t.state.name for t in reopened.trials] == ["FAIL", "RUNNING", "WAITING"]  # the dead one queued again


def test_a_silent_heartbeat_fails_a_remote_trial(tmp_path):
    spec, training = make_spec(), tiny_training(heartbeat_s=1, stale_after_s=2)
    study = open_study(training, spec, "digest", "dnn", storage_root=tmp_path)
    remote = study.ask()
    remote.set_user_attr(WORKER_ATTR, "some-other-host:4242")
    study._storage.record_heartbeat(remote._trial_id)
    time.sleep(3.5)
    reopened = open_study(training, spec, "digest", "dnn", storage_root=tmp_path)
    assert [t.state.name for t in reopened.trials] == ["FAIL", "WAITING"]  # failed and queued again


def test_search_workers_share_the_project_lock_and_any_other_run_excludes_them(tmp_path):
    """N ``kedro run --pipelines=search`` in one project split a study; a train run must wait for them."""
    code = (
        "import sys, time; from ccss_pipeline.run_lock import ProjectLock; "
        f"lock = ProjectLock({str(tmp_path)!r}); lock.acquire({{'pipelines': 'search'}}, shared=True); "
        "print('held', flush=True); time.sleep(60)"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "held"
        second = ProjectLock(tmp_path)
        second.acquire({"pipelines": "search"}, shared=True)  # a second search worker joins
        other = ProjectLock(tmp_path)
        with pytest.raises(ProjectBusyError, match=f"pid {worker.pid}.*pipelines search"):
            other.acquire({"pipelines": "train"})
        second.release()
        with pytest.raises(ProjectBusyError):  # the first worker still holds it
            other.acquire({"pipelines": "train"})
    finally:
        worker.kill()
        worker.wait()
    other.acquire({"pipelines": "train"})
    with pytest.raises(ProjectBusyError, match="pipelines train"):
        ProjectLock(tmp_path).acquire({"pipelines": "search"}, shared=True)
    other.release()
