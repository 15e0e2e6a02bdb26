"""The Optuna search (ccss_pipeline.model.search): study naming, suggestions, best-trial choice, resume,
stale trials, pruning and the violation constraint. No Kedro; tiny synthetic inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import optuna
import pytest

from ccss_pipeline.config import (
    BackboneConfig,
    ContrastiveConfig,
    OptimizerConfig,
    PrunerConfig,
    SearchConfig,
    SearchRange,
    TrainingConfig,
)
from ccss_pipeline.model import search as search_mod
from ccss_pipeline.model.search import (
    CONSTRAINT_ATTR,
    VIOLATION_ATTR,
    best_parameters,
    open_study,
    run_search,
    study_name,
    suggest_contrastive,
    trials_table,
)
from ccss_pipeline.model.synthesis import draw_pairs
from tests.model.conftest import make_inputs, make_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

STORAGE = "data/optuna.db"


def _training(**search_kw) -> TrainingConfig:
    search = {"n_trials": 2, "max_epochs": 1, "storage_path": STORAGE, "violation_rows": 100, **search_kw}
    return TrainingConfig(
        backbones=["dnn"],
        backbone=BackboneConfig(hidden_units=[8], embedding_dim=4),
        optimizer=OptimizerConfig(batch_size=128, max_epochs=1, device="cpu"),
        search=SearchConfig(**search),
    )


def _update(cfg: TrainingConfig, section: str, **kw) -> TrainingConfig:
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=kw)})


# ------------------------------------------------------------------------------------- study name


def test_study_name_tracks_what_the_trials_depend_on(spec):
    base = _training()
    name = study_name(base, spec, "data-a")
    assert name.startswith("ccss-") and name == study_name(_training(), spec, "data-a")
    # budget of the search only: same study (resume)
    assert study_name(_update(base, "search", n_trials=50), spec, "data-a") == name
    assert study_name(_update(base, "search", timeout_s=30.0), spec, "data-a") == name
    # the contrastive values the search overrides do not matter either
    assert study_name(_update(base, "contrastive", weight=5.0, margin=0.5), spec, "data-a") == name
    changed = [
        study_name(_update(base, "search", weight=SearchRange(low=0.5, high=5.0)), spec, "data-a"),
        study_name(_update(base, "search", margin=SearchRange(low=1e-4, high=1.0)), spec, "data-a"),
        study_name(_update(base, "search", max_violation=0.1), spec, "data-a"),
        study_name(_update(base, "search", max_epochs=3), spec, "data-a"),
        study_name(_update(base, "contrastive", loss="bpr"), spec, "data-a"),
        study_name(_update(base, "contrastive", anchor_on_original=False), spec, "data-a"),
        study_name(_update(base, "optimizer", learning_rate=0.01), spec, "data-a"),
        study_name(base.model_copy(update={"backbones": ["dcn_v2"]}), spec, "data-a"),
        study_name(base, spec, "data-b"),  # different data (e.g. a redrawn pair table)
    ]
    other_spec = make_spec()
    other_spec.numerical[0] = dataclasses.replace(other_spec.numerical[0], direction=-1)
    changed.append(study_name(base, other_spec, "data-a"))  # a different data spec
    assert name not in changed
    assert len(set(changed)) == len(changed)


# ------------------------------------------------------------------------------------- suggestions


@pytest.mark.parametrize("loss, has_tau", [("margin", False), ("infonce", True), ("bpr", True)])
def test_suggest_contrastive_suggests_temperature_only_where_the_loss_has_one(loss, has_tau):
    search = SearchConfig(temperature=SearchRange(low=0.2, high=0.3))
    base = ContrastiveConfig(loss=loss, temperature=0.9)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    out = suggest_contrastive(trial, base, search)
    assert set(trial.params) == ({"weight", "margin", "temperature"} if has_tau else {"weight", "margin"})
    assert search.weight.low <= out.weight <= search.weight.high
    assert search.margin.low <= out.margin <= search.margin.high
    assert out.loss == loss and out.anchor_on_original == base.anchor_on_original
    if has_tau:
        assert 0.2 <= out.temperature <= 0.3 and out.temperature == trial.params["temperature"]
    else:
        assert out.temperature == 0.9


# ------------------------------------------------------------------------------------- best parameters


def _add(study, value, weight, margin, constraint=None, state=optuna.trial.TrialState.COMPLETE):
    dists = {
        "weight": optuna.distributions.FloatDistribution(0.1, 10.0, log=True),
        "margin": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
    }
    attrs = {VIOLATION_ATTR: 0.05}
    if constraint is not None:
        attrs[CONSTRAINT_ATTR] = constraint
    study.add_trial(
        optuna.trial.create_trial(
            params={"weight": weight, "margin": margin},
            distributions=dists,
            value=value if state == optuna.trial.TrialState.COMPLETE else None,
            user_attrs=attrs,
            state=state,
        )
    )


def test_best_parameters_picks_the_best_feasible_trial():
    training = _training(max_violation=0.02)
    study = optuna.create_study(direction="maximize", study_name="s")
    _add(study, 0.70, 1.0, 0.01, constraint=-0.01)  # feasible
    _add(study, 0.90, 2.0, 0.02, constraint=0.05)  # best value but infeasible
    _add(study, 0.75, 3.0, 0.03, constraint=0.0)  # best feasible (boundary counts as feasible)
    _add(study, 0.74, 4.0, 0.04, constraint=-0.5)
    _add(study, None, 5.0, 0.05, state=optuna.trial.TrialState.PRUNED)
    out = best_parameters(study, training)
    assert out["source"] == "trial 2" and out["feasible"] is True
    assert out["weight"] == 3.0 and out["margin"] == 0.03 and out["val_auc"] == 0.75
    assert out["temperature"] == training.contrastive.temperature
    assert out["learning_rate"] == training.optimizer.learning_rate
    assert out["n_trials"] == 5 and out["study"] == "s" and out["loss"] == "margin"


def test_best_parameters_without_any_feasible_trial_takes_the_best_completed():
    study = optuna.create_study(direction="maximize")
    _add(study, 0.6, 1.0, 0.01, constraint=0.1)
    _add(study, 0.8, 2.0, 0.02, constraint=0.2)
    out = best_parameters(study, _training(max_violation=0.0))
    assert out["source"] == "trial 1" and out["feasible"] is False and out["weight"] == 2.0


def test_best_parameters_falls_back_to_defaults_without_a_completed_trial():
    training = _training()
    study = optuna.create_study(direction="maximize")
    _add(study, None, 5.0, 0.05, state=optuna.trial.TrialState.PRUNED)
    _add(study, None, 6.0, 0.06, state=optuna.trial.TrialState.FAIL)
    out = best_parameters(study, training)
    c = training.contrastive
    assert out["source"] == "defaults"
    assert (out["weight"], out["margin"], out["temperature"]) == (c.weight, c.margin, c.temperature)
    assert out["learning_rate"] == training.optimizer.learning_rate
    assert "val_auc" not in out
    assert best_parameters(optuna.create_study(), training)["source"] == "defaults"


# ------------------------------------------------------------------------------------- running the search


@pytest.fixture(scope="module")
def data():
    spec = make_spec()
    train = make_inputs(spec, 400, seed=3)
    valid = make_inputs(spec, 200, seed=4)
    p = np.full(len(spec.directed), 1.0 / len(spec.directed))
    p[[i for i, f in enumerate(spec.directed) if f.n_buckets < 2]] = 0.0
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p / p.sum(), seed=0)
    return spec, train, valid, pairs


def _finished(study):
    return [t for t in study.get_trials(deepcopy=False) if t.state in search_mod.FINISHED]


def test_run_search_resumes_the_study(data, tmp_path):
    spec, train, valid, pairs = data
    first = run_search(spec, train, valid, pairs, _training(n_trials=2), storage_root=tmp_path)
    assert (tmp_path / STORAGE).is_file()
    before = [(t.number, t.state, t.params, t.value) for t in first.trials]
    assert len(_finished(first)) == 2
    for t in first.trials:
        assert 0.0 <= t.user_attrs[VIOLATION_ATTR] <= 1.0 and CONSTRAINT_ATTR not in t.user_attrs

    again = run_search(spec, train, valid, pairs, _training(n_trials=3), storage_root=tmp_path)
    assert again.study_name == first.study_name
    assert len(_finished(again)) == 3 and len(again.trials) == 3
    assert [(t.number, t.state, t.params, t.value) for t in again.trials[:2]] == before

    # nothing missing: a rerun runs no trial
    same = run_search(spec, train, valid, pairs, _training(n_trials=3), storage_root=tmp_path)
    assert len(same.trials) == 3
    table = trials_table(same)
    assert len(table) == 3 and {"number", "value", "params_weight", "params_margin", "state"} <= set(table.columns)


def test_stale_running_trials_are_failed_on_reopen(data, tmp_path):
    spec, _, _, pairs = data
    training = _training()
    study = open_study(training, spec, len(pairs), storage_root=tmp_path)
    study.ask()  # a trial whose process "died"
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING
    reopened = open_study(training, spec, len(pairs), storage_root=tmp_path)
    assert [t.state for t in reopened.trials] == [optuna.trial.TrialState.FAIL]


def test_pruned_trials_are_recorded(data, tmp_path, monkeypatch):
    spec, train, valid, pairs = data

    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    real = optuna.create_study
    monkeypatch.setattr(search_mod.optuna, "create_study", lambda **kw: real(**{**kw, "pruner": AlwaysPrune()}))
    study = run_search(spec, train, valid, pairs, _training(n_trials=2), storage_root=tmp_path)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert best_parameters(study, _training())["source"] == "defaults"


def test_max_violation_sets_the_constraint_attribute(data, tmp_path):
    spec, train, valid, pairs = data
    training = _training(n_trials=2, max_violation=0.0, pruner=PrunerConfig(enabled=False))
    study = run_search(spec, train, valid, pairs, training, storage_root=tmp_path)
    assert len(study.trials) == 2
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.user_attrs[CONSTRAINT_ATTR] == pytest.approx(t.user_attrs[VIOLATION_ATTR])
        assert t.user_attrs[CONSTRAINT_ATTR] >= 0.0
    # with a constraint the study is a different one than without
    assert study.study_name != study_name(_training(), spec, len(pairs))
    assert Path(tmp_path / STORAGE).is_file()
