"""Issue 28 ("reliability round 3"), the four items that were still weak.

Each test failed on the code before the fix:

1. a search killed mid-trial resumed without replays, but its next draw differed from an uninterrupted
   run's (the dead trial's queued copy took a new number, shifting every later trial's sampler seed), so
   it chose another λ;
2. a truncated ``train.parquet`` failed with pyarrow's bare "magic bytes not found", naming no file;
3. changing ``counterfactual_pairs.move`` and rerunning ``model_training`` alone trained on the old pairs;
4. a crash between the two renames of a folder swap left no ``trained/`` folder, only a hidden backup.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import PairsConfig
from ccss_pipeline.model.moves import move_name
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.spec import ModelInputs
from ccss_pipeline.tuning import search as search_mod
from ccss_pipeline.tuning.search import SearchData, run_search
from ccss_pipeline.tuning.study import draw_number
from ccss_pipeline.tuning.workers import FINISHED, WORKER_ATTR
from tests.model.conftest import make_inputs, make_spec
from tests.support.configs import tiny_training

optuna.logging.set_verbosity(optuna.logging.WARNING)

# ------------------------------------------------------------------ 1. a kill mid-trial changes no draw


class _Killed(BaseException):
    """A SIGKILL stand-in: not an ``Exception``, so Optuna leaves the trial RUNNING as a kill would."""


@pytest.fixture(scope="module")
def search_data():
    spec = make_spec()
    train, valid = make_inputs(spec, 400, seed=3), make_inputs(spec, 200, seed=4)
    p = np.full(len(spec.directed), 1.0 / len(spec.directed))
    p[[i for i, f in enumerate(spec.directed) if f.n_buckets < 2]] = 0.0
    return spec, train, valid, draw_pairs(train.bucket, train.dense, train.label, spec, p / p.sum(), seed=0)


def _dead_worker() -> str:
    """``host:pid`` of a process that has exited."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}:{gone.stdout.strip()}"


def _kill_during_trial(monkeypatch: pytest.MonkeyPatch, trial_number: int) -> None:
    """Make the worker die inside trial ``trial_number``'s fit (after its point was drawn)."""
    real, calls = search_mod.train_model, [0]

    def train_or_die(**kw):
        calls[0] += 1
        if calls[0] == trial_number + 1:
            raise _Killed
        return real(**kw)

    monkeypatch.setattr(search_mod, "train_model", train_or_die)


def _finished_points(study: optuna.Study) -> list[dict[str, float]]:
    return [t.params for t in study.get_trials(deepcopy=False, states=FINISHED)]


def test_a_search_killed_mid_trial_draws_what_an_uninterrupted_one_draws(search_data, tmp_path, monkeypatch):
    spec, train, valid, pairs = search_data
    training = tiny_training(n_trials=4, n_startup_trials=1)  # trials 1-3 are TPE's: they read the history
    whole = run_search(SearchData(spec, train, valid, pairs), training, "dnn", storage_root=tmp_path / "whole")

    _kill_during_trial(monkeypatch, 2)
    with pytest.raises(_Killed):
        run_search(SearchData(spec, train, valid, pairs), training, "dnn", storage_root=tmp_path / "killed")
    monkeypatch.undo()
    killed = optuna.load_study(
        study_name=whole.study_name, storage=f"sqlite:///{tmp_path / 'killed' / 'data' / 'optuna.db'}"
    )
    (running,) = killed.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    killed._storage.set_trial_user_attr(running._trial_id, WORKER_ATTR, _dead_worker())

    resumed = run_search(SearchData(spec, train, valid, pairs), training, "dnn", storage_root=tmp_path / "killed")
    states = [t.state.name for t in resumed.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"], states
    assert resumed.trials[3].system_attrs["failed_trial"] == 2  # the dead trial, run again with its point
    assert _finished_points(resumed) == _finished_points(whole)


def test_draw_numbers_stay_distinct_for_new_trials():
    """Copies take their original's number; every other trial its own (workers never share a seed)."""
    trials = [
        optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[0.5, 0.0]),
        optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL),
        optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[0.5, 0.0]),
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=[0.5, 0.0], system_attrs={"failed_trial": 1}
        ),
        optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING),
    ]
    for number, trial in enumerate(trials):
        trial.number = number
    assert [draw_number(trials, n) for n in range(5)] == [0, 1, 2, 1, 3]


# ------------------------------------------------------------------ 2. a truncated train.parquet is named


def _model_ready_frame(spec) -> pd.DataFrame:
    """A model-ready split as feature_engineering writes it: label, group, ids, dense and bucket columns."""
    from ccss_pipeline.lineage import stamp
    from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN

    inputs = make_inputs(spec, 600, seed=1)
    frame = pd.DataFrame({LABEL_COLUMN: inputs.label, GROUP_COLUMN: inputs.group})
    for j, c in enumerate(spec.categorical):
        frame[c.column] = inputs.cat[:, j]
    for k, f in enumerate(spec.numerical):
        frame[f.dense_column] = inputs.dense[:, k]
        frame[f.bucket_column] = inputs.bucket[:, k]
    return stamp(frame, spec)


@pytest.fixture
def truncated_train(tmp_path) -> tuple[Path, Path]:
    """``(good, truncated)``: a written ``train.parquet`` and a copy cut to half its bytes (a kill or a full
    disk mid-copy)."""
    from ccss_pipeline.datasets.tables import EngineTableDataset

    good = tmp_path / "good" / "train.parquet"
    EngineTableDataset(str(good), load_as="lazy").save(_model_ready_frame(make_spec()))
    cut = tmp_path / "05_model_input" / "train.parquet"
    cut.parent.mkdir()
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return good, cut


def _says_unreadable(message: str, path: Path) -> None:
    assert str(path) in message and "unreadable parquet file" in message and "truncated" in message, message


def test_a_truncated_train_table_is_named_before_the_training_node_runs(truncated_train):
    """The spec check of the training node's inputs (``SpecCheckHooks``, before the node runs) is where the
    stage first touches the table's footer: it names the file and the pipeline that rebuilds it."""
    from ccss_pipeline.datasets.tables import EngineTableDataset
    from ccss_pipeline.hooks import SpecCheckHooks
    from ccss_pipeline.pipelines.model_training.pipeline import create_pipeline

    good, cut = truncated_train
    spec = make_spec()
    train = EngineTableDataset(str(cut), load_as="lazy").load()  # lazy: nothing read yet
    valid = EngineTableDataset(str(good), load_as="lazy").load()
    node = next(n for n in create_pipeline().nodes if n.name == "model_training.train_ccss_and_baseline")
    inputs = dict.fromkeys(node.inputs) | {
        "train_model_input": train,
        "validation_model_input": valid,
        "feature_spec": spec,
    }
    with pytest.raises(ValueError) as info:
        SpecCheckHooks().before_node_run(node, inputs)
    _says_unreadable(str(info.value), cut)
    assert "'train_model_input'" in str(info.value)
    assert "kedro run --pipelines=feature_engineering" in str(info.value)


@pytest.mark.parametrize("read", ["model_source", "pandas", "columns"])
def test_every_read_of_a_truncated_table_names_it(truncated_train, read):
    from ccss_pipeline.datasets.tables import EngineTableDataset
    from ccss_pipeline.model.streaming import model_source
    from ccss_pipeline.parquet_table import ParquetTable

    _, cut = truncated_train
    with pytest.raises(Exception) as info:  # noqa: B017 - Kedro wraps a dataset's load error in DatasetError
        if read == "model_source":
            model_source(ParquetTable(cut), make_spec(), 10, "train_model_input")
        elif read == "pandas":
            EngineTableDataset(str(cut), load_as="pandas").load()
        else:
            _ = ParquetTable(cut).columns
    _says_unreadable(str(info.value), cut)


# ------------------------------------------------------------------ 3. pairs of another move are refused


def _pairs_config(**kw) -> PairsConfig:
    return PairsConfig(**{"move": "decomposed", "anchor_share": 0.5, **kw})


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    """A model_training stage's inputs as the catalog hands them: the split and a pair table drawn with
    ``decomposed@0.5`` (the configuration's defaults) as lazy parquet tables, and the importances, each
    stamped for the spec."""
    from ccss_pipeline.lineage import stamp
    from ccss_pipeline.model.importance import FeatureImportance
    from ccss_pipeline.parquet_table import ParquetTable

    spec = make_spec()
    folder = tmp_path_factory.mktemp("stage_inputs")
    frame = _model_ready_frame(spec)
    frame.to_parquet(folder / "train.parquet", index=False)
    p = {f.name: 1.0 / len(spec.directed) for f in spec.directed}
    importance = FeatureImportance(q={f.name: 1.0 for f in spec.numerical}, p=p, spec_fingerprint=spec.fingerprint)
    train = ModelInputs.from_frame(frame, spec)
    drawn = draw_pairs(
        train.bucket, train.dense, train.label, spec, importance.draw_probabilities(spec), seed=0, move="decomposed@0.5"
    )
    stamp(drawn.to_frame(), spec).to_parquet(folder / "pairs.parquet", index=False)
    return spec, ParquetTable(folder / "train.parquet"), ParquetTable(folder / "pairs.parquet"), importance


def _check_pair_move(training, configured: PairsConfig, pairs) -> None:
    """The pair-move check a run makes before each model_training node (``PairMoveCheckHooks``), with the
    configured move in the catalog as Kedro holds it."""
    from kedro.io import DataCatalog

    from ccss_pipeline.hooks import PairMoveCheckHooks
    from ccss_pipeline.pipelines.model_training.pipeline import create_pipeline

    catalog = DataCatalog()
    catalog["params:counterfactual_pairs"] = configured.model_dump()
    for node in create_pipeline().nodes:
        inputs = dict.fromkeys(node.inputs) | {"counterfactual_pairs": pairs, "params:model_training": training}
        PairMoveCheckHooks().before_node_run(node, catalog, inputs)


@pytest.mark.parametrize("changed", [{"move": "centre"}, {"anchor_share": 0.0}, {"anchor_share": 0.25}])
def test_pairs_of_another_move_are_refused_for_ccss(stage_inputs, changed):
    from ccss_pipeline.lineage import StaleArtifactError

    _, _, pairs, _ = stage_inputs
    configured = _pairs_config(**changed)
    with pytest.raises(StaleArtifactError) as info:
        _check_pair_move(tiny_training(), configured, pairs)
    message = str(info.value)
    wanted = move_name(configured.move, configured.anchor_share)
    assert "'decomposed@0.5'" in message and f"'{wanted}'" in message, message
    assert "counterfactual_pairs.move" in message and "kedro run --pipelines=counterfactual_pairs" in message
    assert str(pairs.path) in message, message


def test_pairs_of_the_configured_move_are_used_and_other_methods_never_refuse(stage_inputs):
    from ccss_pipeline.pipelines.model_training import nodes

    spec, split, pairs, importance = stage_inputs
    _check_pair_move(tiny_training(), _pairs_config(), pairs)
    got = nodes.stage_inputs(split, split, spec, pairs, importance, tiny_training())
    assert got.pairs is not None and got.move == got.pairs.move == "decomposed@0.5"
    pwl = tiny_training().model_copy(update={"method": "pwl"})  # no pairs: the pair settings do not matter
    _check_pair_move(pwl, _pairs_config(move="centre"), pairs)
    got = nodes.stage_inputs(split, split, spec, pairs, importance, pwl)
    assert got.pairs is None


def test_the_pair_move_is_checked_before_training_and_dvc_tracks_the_pair_settings():
    """The training nodes no longer take the pair settings: a hook registered for every run reads them
    from the catalog before each training node runs, after the spec check (pluggy calls the last
    registered hook first); DVC still reruns model_training when they change."""
    from ccss_pipeline.hooks import PairMoveCheckHooks, SpecCheckHooks
    from ccss_pipeline.settings import HOOKS
    from tests.kedro_project import REPO

    kinds = [type(hook) for hook in HOOKS]
    assert kinds.index(PairMoveCheckHooks) < kinds.index(SpecCheckHooks)
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["model_training"]
    params = {k: v for item in stage["params"] if isinstance(item, dict) for k, v in item.items()}
    assert {"counterfactual_pairs.move", "counterfactual_pairs.anchor_share"} <= set(
        params["conf/base/parameters_counterfactual_pairs.yml"]
    )


# ------------------------------------------------------------------ 4. a folder swap killed halfway


def _models(seed: int):
    """Two tiny trained-model records (distinct weights per ``seed``)."""
    import torch

    from ccss_pipeline.config import BackboneConfig
    from ccss_pipeline.model.persistence import TrainedModel

    net = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(net.weight, float(seed))
    return {
        f"dnn__{variant}__seed0": TrainedModel(
            name=f"dnn__{variant}__seed0",
            backbone=BackboneConfig(),
            variant=variant,
            seed=seed,
            spec_fingerprint="abc",
            state_dict=net.state_dict(),
        )
        for variant in ("baseline", "ccss")
    }


def _crash_on_second_rename(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The swap's first rename (old folder aside) happens; then ``kill``: the process dies (a BaseException
    no handler catches), or ``disk``: every later rename fails, the putting back included."""
    real, calls = os.replace, [0]

    def replace(src, dst):
        calls[0] += 1
        if calls[0] == 2 or (how == "disk" and calls[0] > 2):
            raise _Killed if how == "kill" else OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def _interrupted_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str):
    """``trained/`` saved once, then a second save interrupted between its two renames."""
    from ccss_pipeline.datasets.models import ModelCollectionDataset

    dataset = ModelCollectionDataset(str(tmp_path / "trained"))
    dataset.save(_models(1))
    _crash_on_second_rename(monkeypatch, how)
    with pytest.raises(BaseException):  # noqa: B017 - the kill, or the write error naming trained/
        dataset.save(_models(2))
    monkeypatch.undo()
    assert not (tmp_path / "trained").exists()  # the state the issue describes: only hidden copies
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".trained.old-")]
    return ModelCollectionDataset(str(tmp_path / "trained"))


def _weight(models) -> float:
    return float(models["dnn__ccss__seed0"].state_dict["weight"].flatten()[0])


@pytest.mark.parametrize("how", ["kill", "disk"])
def test_a_load_after_a_swap_killed_halfway_finds_the_previous_models(tmp_path, monkeypatch, caplog, how):
    dataset = _interrupted_save(tmp_path, monkeypatch, how)
    assert dataset.exists()
    assert _weight(dataset.load()) == 1.0  # the previous models, put back
    assert "restored the previous version" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trained"]


@pytest.mark.parametrize("how", ["kill", "disk"])
def test_a_save_after_a_swap_killed_halfway_keeps_no_hidden_copies(tmp_path, monkeypatch, how):
    dataset = _interrupted_save(tmp_path, monkeypatch, how)
    dataset.save(_models(3))
    assert _weight(dataset.load()) == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trained"]


def test_a_backup_of_a_live_swap_is_left_alone(tmp_path):
    """Another running process between its two renames: its backup is not taken from under it."""
    from ccss_pipeline.files import restore_interrupted_swap

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        backup = tmp_path / f".trained.old-{sleeper.pid}-abcd1234"
        backup.mkdir()
        assert restore_interrupted_swap(tmp_path / "trained") is None and backup.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert restore_interrupted_swap(tmp_path / "trained") == backup and (tmp_path / "trained").is_dir()
