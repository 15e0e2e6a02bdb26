"""The Optuna search (ccss_pipeline.tuning.search): study naming, suggestions, the pruning rule, the
selection rule, sampler seeding, resume, stale trials, plots. No Kedro; tiny synthetic inputs."""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pytest
from matplotlib.figure import Figure

from ccss_pipeline.config import (
    ContrastiveConfig,
    PrunerConfig,
    SearchConfig,
    SearchRange,
    TrainingConfig,
)
from ccss_pipeline.model.methods.ccss import suggest_contrastive
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.tuning import search as search_mod
from ccss_pipeline.tuning import workers
from ccss_pipeline.tuning.plots import plot_pareto_front, trials_table
from ccss_pipeline.tuning.search import HISTORY_ATTR, SearchData, run_search, should_prune
from ccss_pipeline.tuning.selection import (
    AUC_ATTR,
    EDGE_ATTR,
    SHARE_ATTR,
    best_parameters,
    select_trial,
    trial_constraints,
)
from ccss_pipeline.tuning.study import open_study, sampler_seed, search_digest, study_name
from tests.model.conftest import make_inputs, make_spec
from tests.support.configs import STORAGE, tiny_training

optuna.logging.set_verbosity(optuna.logging.WARNING)

COMPLETE, PRUNED, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL


def _update(cfg: TrainingConfig, section: str, **kw) -> TrainingConfig:
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=kw)})


# ------------------------------------------------------------------------------------- study name


def test_study_name_tracks_what_the_trials_depend_on(spec):
    base = tiny_training()
    name = study_name(base, spec, "data-a", "dnn")
    assert name.startswith("ccss-dnn-") and name == study_name(tiny_training(), spec, "data-a", "dnn")
    # budget, selection target, pruner, start-up count: same study (resume, re-select)
    same = [
        study_name(_update(base, "search", n_trials=50, n_startup_trials=10), spec, "data-a", "dnn"),
        study_name(_update(base, "search", timeout_s=30.0), spec, "data-a", "dnn"),
        study_name(_update(base, "search", max_violation=0.1), spec, "data-a", "dnn"),
        study_name(_update(base, "search", pruner=PrunerConfig(enabled=False, min_delta=0.1)), spec, "data-a", "dnn"),
        study_name(_update(base, "search", storage_path="data/other.db"), spec, "data-a", "dnn"),
        # how workers keep trials alive and retry a dead one's
        study_name(_update(base, "search", heartbeat_s=2, stale_after_s=9, max_retry=0), spec, "data-a", "dnn"),
        # the contrastive values the search overrides, and the final fit's epoch budget
        study_name(_update(base, "contrastive", weight=5.0, margin=0.5), spec, "data-a", "dnn"),
        study_name(_update(base, "optimizer", max_epochs=20), spec, "data-a", "dnn"),
        # the list of backbones: the study is per backbone
        study_name(base.model_copy(update={"backbones": ["dcn_v2", "dnn"]}), spec, "data-a", "dnn"),
    ]
    assert set(same) == {name}
    changed = [
        study_name(base, spec, "data-a", "dcn_v2"),
        study_name(_update(base, "search", weight=SearchRange(low=0.5, high=5.0)), spec, "data-a", "dnn"),
        study_name(_update(base, "search", margin=SearchRange(low=1e-4, high=1.0)), spec, "data-a", "dnn"),
        study_name(_update(base, "search", max_epochs=3), spec, "data-a", "dnn"),
        study_name(_update(base, "search", grid_levels=50), spec, "data-a", "dnn"),
        study_name(_update(base, "search", violation_rows=500), spec, "data-a", "dnn"),
        study_name(_update(base, "search", seed=1), spec, "data-a", "dnn"),
        study_name(_update(base, "contrastive", loss="bpr"), spec, "data-a", "dnn"),
        study_name(_update(base, "contrastive", anchor_on_original=False), spec, "data-a", "dnn"),
        study_name(_update(base, "optimizer", learning_rate=0.01), spec, "data-a", "dnn"),
        study_name(_update(base, "backbone", hidden_units=[16]), spec, "data-a", "dnn"),
        study_name(base, spec, "data-b", "dnn"),  # different data (e.g. a redrawn pair table)
    ]
    other_spec = make_spec()
    other_spec.numerical[0] = dataclasses.replace(other_spec.numerical[0], direction=-1)
    changed.append(study_name(base, other_spec, "data-a", "dnn"))  # a different data spec
    assert name not in changed
    assert len(set(changed)) == len(changed)
    assert changed[0].startswith("ccss-dcn_v2-")
    with pytest.raises(ValueError):
        study_name(base, spec, "data-a", "resnet")


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


def test_edge_settings_and_pair_fraction_are_searched_only_with_a_range():
    base = ContrastiveConfig(edge_weight=2.0, edge_margin=0.003, pair_fraction=0.1)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    out = suggest_contrastive(trial, base, SearchConfig())
    assert set(trial.params) == {"weight", "margin"} and (out.edge_weight, out.pair_fraction) == (2.0, 0.1)
    ranged = SearchConfig(
        edge_weight=SearchRange(low=1, high=8), pair_fraction=SearchRange(low=0.1, high=0.5, log=False)
    )
    trial = study.ask()
    out = suggest_contrastive(trial, base, ranged)
    assert set(trial.params) == {"weight", "margin", "edge_weight", "pair_fraction"}
    assert 1 <= out.edge_weight <= 8 and 0.1 <= out.pair_fraction <= 0.5 and out.edge_margin == 0.003
    with pytest.raises(ValueError, match="pair_fraction"):
        SearchConfig(pair_fraction=SearchRange(low=0.5, high=2.0, log=False))


# ------------------------------------------------------------------------------------- pruning rule


def test_should_prune_below_the_median_by_more_than_min_delta():
    cfg = PrunerConfig(enabled=True, n_startup_trials=3, n_warmup_steps=1, min_delta=0.003)
    others = [[0.60, 0.70], [0.61, 0.72], [0.62, 0.74]]  # median at epoch 2: 0.72
    assert should_prune(others, 2, 0.716, cfg)  # 0.004 below
    assert not should_prune(others, 2, 0.718, cfg)  # 0.002 below: within min_delta, noise
    assert not should_prune(others, 2, 0.80, cfg)
    # median of an even count is the mean of the middle two
    assert should_prune([*others, [0.0, 0.76]], 2, 0.726, cfg)  # median 0.73
    assert not should_prune([*others, [0.0, 0.76]], 2, 0.728, cfg)


def test_should_prune_waits_for_warmup_startup_trials_and_values_at_that_epoch():
    cfg = PrunerConfig(enabled=True, n_startup_trials=3, n_warmup_steps=1, min_delta=0.0)
    others = [[0.70, 0.70, 0.70]] * 3
    assert not should_prune(others, 1, 0.10, cfg)  # epoch 1 <= n_warmup_steps: one epoch's noise never prunes
    assert should_prune(others, 2, 0.10, cfg)
    # only two trials have a value at epoch 3 (the others stopped early or were pruned before it)
    short = [[0.70, 0.70, 0.70], [0.70, 0.70, 0.70], [0.70, 0.70]]
    assert should_prune(short, 2, 0.10, cfg) and not should_prune(short, 3, 0.10, cfg)
    # NaN values do not count; a NaN AUC is never pruned
    assert not should_prune([[0.7, 0.7], [0.7, 0.7], [0.7, float("nan")]], 2, 0.1, cfg)
    assert not should_prune(others, 2, float("nan"), cfg)
    assert not should_prune([], 5, 0.1, cfg)
    assert not should_prune(others, 2, 0.10, cfg.model_copy(update={"enabled": False}))
    assert should_prune(others, 1, 0.10, cfg.model_copy(update={"n_warmup_steps": 0}))


# ------------------------------------------------------------------------------------- selection on a fake study

DISTS = {
    "weight": optuna.distributions.FloatDistribution(0.1, 10.0, log=True),
    "margin": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
}


def _fake_study(trials: list[tuple], name: str = "fake", edges: list[float] | None = None) -> optuna.Study:
    """``trials``: (auc, share, weight, margin[, state]); values None for non-complete states;
    ``edges``: each trial's validation edge-test share (0 when not given)."""
    study = optuna.create_study(directions=["maximize", "minimize"], study_name=name)
    for i, spec in enumerate(trials):
        auc, share, weight, margin, state = (*spec, COMPLETE) if len(spec) == 4 else spec
        edge = 0.0 if edges is None else edges[i]
        study.add_trial(
            optuna.trial.create_trial(
                values=[auc, share] if state == COMPLETE else None,
                params={"weight": weight, "margin": margin},
                distributions=DISTS,
                user_attrs={HISTORY_ATTR: [0.5], **({EDGE_ATTR: edge} if state == COMPLETE else {})},
                state=state,
            )
        )
    return study


def test_the_edge_test_is_a_target_too(caplog):
    trials = [(0.80, 0.001, 1.0, 0.01), (0.78, 0.002, 2.0, 0.02), (0.76, 0.003, 3.0, 0.03)]
    study = _fake_study(trials, edges=[0.05, 0.008, 0.0])
    best, feasible = select_trial(study.trials, 0.005, 0.01)
    assert best.number == 1 and feasible  # the best AUC misses the edge target
    assert select_trial(study.trials, 0.005, None)[0].number == 0  # no edge target: the best AUC
    out = best_parameters(study, tiny_training(max_violation=0.005))  # the default edge target, 1%
    assert out.source == "trial 1" and out.val_edge_wrong_share == 0.008 and out.max_edge_violation == 0.01
    assert out.n_feasible == 2  # trials 1 and 2 meet both targets
    # none meets both: the closest by its worst ratio to a target (trial 2: 0.004/0.002 = 2 < 0.02/0.005)
    far = _fake_study([(0.80, 0.02, 1.0, 0.01), (0.70, 0.004, 2.0, 0.02)], edges=[0.0, 0.02])
    with caplog.at_level(logging.WARNING, logger="ccss_pipeline.tuning.search"):
        best, feasible = select_trial(far.trials, 0.002, 0.01)
    assert best.number == 1 and not feasible and "edge test" in caplog.text


def test_trial_constraints_read_the_attributes_before_the_values_are_set():
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, user_attrs={SHARE_ATTR: 0.004, EDGE_ATTR: 0.02}
    )
    assert trial_constraints(trial, 0.005, 0.01) == pytest.approx((-0.001, 0.01))
    assert trial_constraints(trial, None, None) == (0.0, 0.0)
    blank = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING)
    assert trial_constraints(blank, 0.005, 0.01) == (1.0, 1.0)  # not measured: infeasible


def test_select_trial_takes_the_best_auc_among_feasible_trials():
    study = _fake_study(
        [
            (0.70, 0.001, 1.0, 0.01),
            (0.90, 0.050, 2.0, 0.02),  # best AUC but above the target
            (0.75, 0.005, 3.0, 0.03),  # best feasible (the target itself counts as feasible)
            (0.74, 0.000, 4.0, 0.04),
            (None, None, 5.0, 0.05, PRUNED),
            (0.75, 0.002, 6.0, 0.06),  # same AUC as trial 2, later: loses the tie
        ]
    )
    best, feasible = select_trial(study.trials, 0.005, None)
    assert best.number == 2 and feasible is True
    best, feasible = select_trial(study.trials, None, None)  # no target: best AUC overall
    assert best.number == 1 and feasible is True
    out = best_parameters(study, tiny_training(max_violation=0.005))
    assert out.source == "trial 2" and out.feasible is True
    assert out.weight == 3.0 and out.margin == 0.03
    assert out.val_auc == 0.75 and out.val_wrong_step_share == 0.005
    training = tiny_training()
    assert out.temperature == training.contrastive.temperature
    assert out.learning_rate == training.optimizer.learning_rate
    assert out.n_trials == 6 and out.study == "fake" and out.loss == "margin"
    assert out.max_violation == 0.005


def test_select_trial_prefers_the_weakest_feasible_lambda_within_the_auc_tolerance():
    study = _fake_study(
        [
            (0.7803, 0.001, 8.8, 0.01),  # best feasible AUC, strongest λ
            (0.7800, 0.002, 5.5, 0.02),  # 0.0003 below it: the weakest λ within 0.0005, chosen
            (0.7790, 0.000, 2.0, 0.03),  # weaker still, but 0.0013 below: outside the tolerance
            (0.7900, 0.020, 1.0, 0.04),  # best AUC overall, misses the wrong-step target
        ]
    )
    assert select_trial(study.trials, 0.005, None, 0.0005)[0].number == 1
    assert select_trial(study.trials, 0.005, None)[0].number == 0  # tolerance 0: the best feasible AUC
    assert select_trial(study.trials, 0.005, None, 0.002)[0].number == 2
    out = best_parameters(study, tiny_training(max_violation=0.005))  # the configured default, 0.0005
    assert out.source == "trial 1" and out.weight == 5.5 and out.auc_tolerance == 0.0005
    strict = tiny_training(max_violation=0.005)
    strict = strict.model_copy(update={"search": strict.search.model_copy(update={"auc_tolerance": 0.0})})
    assert best_parameters(study, strict).source == "trial 0"


def test_select_trial_without_a_feasible_trial_takes_the_lowest_share_and_warns(caplog):
    study = _fake_study(
        [
            (0.80, 0.20, 1.0, 0.01),
            (0.60, 0.05, 2.0, 0.02),
            (0.65, 0.05, 3.0, 0.03),  # same lowest share, higher AUC: chosen
            (0.90, 0.30, 4.0, 0.04),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="ccss_pipeline.tuning.search"):
        out = best_parameters(study, tiny_training(max_violation=0.01))
    assert out.source == "trial 2" and out.feasible is False and out.weight == 3.0
    assert out.val_wrong_step_share == 0.05 and out.val_auc == 0.65
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "0.01" in warning[0] and "0.05" in warning[0] and "trial 2" in warning[0]


def test_best_parameters_falls_back_to_defaults_without_a_completed_trial():
    training = tiny_training()
    study = _fake_study([(None, None, 5.0, 0.05, PRUNED), (None, None, 6.0, 0.06, FAIL)])
    out = best_parameters(study, training)
    c = training.contrastive
    assert out.source == "defaults" and out.feasible is None
    assert (out.weight, out.margin, out.temperature) == (c.weight, c.margin, c.temperature)
    assert out.learning_rate == training.optimizer.learning_rate
    assert out.val_auc is None and out.val_wrong_step_share is None and out.n_trials == 2
    assert select_trial(study.trials, 0.01, 0.01) == (None, False)
    assert best_parameters(_fake_study([]), training).source == "defaults"


def test_pareto_plot_marks_the_chosen_trial_and_the_target():
    study = _fake_study(
        [(0.70, 0.001, 1.0, 0.01), (0.90, 0.050, 2.0, 0.02), (0.75, 0.004, 3.0, 0.03), (None, None, 5.0, 0.05, PRUNED)]
    )
    fig = plot_pareto_front(study, max_violation=0.005)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "validation AUC" and ax.get_ylabel() == "validation wrong-step share"
    assert any(line.get_ydata()[0] == 0.005 for line in ax.get_lines())  # the target line
    assert any("trial 2" in t.get_text() for t in ax.texts)  # the chosen trial
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("chosen: trial 2" in s for s in labels)
    plt.close(fig)
    # the target from the study's user attribute; no completed trial: a message
    study.set_user_attr("max_violation", 0.0001)
    fig = plot_pareto_front(study)
    assert any("misses the target" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    plt.close(fig)
    empty = plot_pareto_front(_fake_study([(None, None, 5.0, 0.05, PRUNED)]), max_violation=0.01)
    assert isinstance(empty, Figure) and "no completed trial" in empty.axes[0].texts[0].get_text()


def test_trials_table_names_the_objectives():
    study = _fake_study([(0.70, 0.001, 1.0, 0.01), (None, None, 5.0, 0.05, PRUNED)])
    table = trials_table(study)
    assert {"number", "state", AUC_ATTR, SHARE_ATTR, "params_weight", "params_margin", "duration"} <= set(table.columns)
    assert table[AUC_ATTR].iloc[0] == 0.70 and math.isnan(table[SHARE_ATTR].iloc[1])
    assert trials_table(_fake_study([])).empty


# ------------------------------------------------------------------------------------- sampler seeding


def test_sampler_seed_differs_with_the_trial_number():
    seeds = [sampler_seed(0, n) for n in range(20)] + [sampler_seed(1, n) for n in range(20)]
    assert len(set(seeds)) == 40 and sampler_seed(0, 3) == sampler_seed(0, 3)


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
    return [t for t in study.get_trials(deepcopy=False) if t.state in workers.FINISHED]


def _point(t):
    return tuple(sorted(t.params.items()))


def test_run_search_resumes_with_new_draws(data, tmp_path):
    spec, train, valid, pairs = data
    first = run_search(SearchData(spec, train, valid, pairs), tiny_training(n_trials=2), "dnn", storage_root=tmp_path)
    assert (tmp_path / STORAGE).is_file()
    assert first.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    before = [(t.number, t.state, t.params, t.values) for t in first.trials]
    assert [t.state for t in first.trials] == [COMPLETE, COMPLETE]
    for t in first.trials:
        auc, share = t.values
        assert t.user_attrs[AUC_ATTR] == auc and t.user_attrs[SHARE_ATTR] == share
        assert 0.0 <= share <= 1.0 and 0.0 <= auc <= 1.0
        assert len(t.user_attrs[HISTORY_ATTR]) == 1 and t.user_attrs["best_epoch"] == 1
        edge = t.user_attrs[EDGE_ATTR]  # the edge test, measured on the same sweep, is TPE's constraint
        assert 0.0 <= edge <= 1.0
        assert t.constraints == {
            "wrong_step_share": pytest.approx(share - 0.005),
            "edge_test": pytest.approx(edge - 0.01),
        }

    # "resume" in a new call with a larger budget (and more random start-up trials, which keeps the
    # study): trials 2 and 3 are new points; the old per-process seeding re-drew trial 0's point here
    again = run_search(
        SearchData(spec, train, valid, pairs),
        tiny_training(n_trials=4, n_startup_trials=3),
        "dnn",
        storage_root=tmp_path,
    )
    assert again.study_name == first.study_name
    assert len(_finished(again)) == 4 and len(again.trials) == 4
    assert [(t.number, t.state, t.params, t.values) for t in again.trials[:2]] == before
    assert len({_point(t) for t in again.trials}) == 4

    # nothing missing: a rerun runs no trial
    same = run_search(
        SearchData(spec, train, valid, pairs),
        tiny_training(n_trials=4, n_startup_trials=3),
        "dnn",
        storage_root=tmp_path,
    )
    assert len(same.trials) == 4
    table = trials_table(same)
    assert len(table) == 4 and {"number", AUC_ATTR, SHARE_ATTR, "params_weight", "params_margin"} <= set(table.columns)
    assert same.user_attrs["backbone"] == "dnn"
    # another backbone: its own study in the same database
    other = open_study(tiny_training(), spec, search_digest(train, valid, pairs), "dcn_v2", tmp_path)
    assert other.study_name != first.study_name and other.trials == []


def test_stale_running_trials_are_failed_on_reopen(data, tmp_path):
    spec, _, _, pairs = data
    training = tiny_training()
    study = open_study(training, spec, len(pairs), "dnn", storage_root=tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial = study.ask()  # a trial whose process died
    trial.suggest_float("weight", 0.1, 10.0, log=True)
    trial.set_user_attr(workers.WORKER_ATTR, f"{socket.gethostname()}:{gone.stdout.strip()}")
    fresh = study.ask()  # started a moment ago and not claimed yet: its worker is about to record itself
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING
    reopened = open_study(training, spec, len(pairs), "dnn", storage_root=tmp_path)
    # the dead one is failed and queued again with its parameters, without the dead worker's attributes
    assert [t.state.name for t in reopened.trials] == ["FAIL", "RUNNING", "WAITING"]
    retry = reopened.trials[2]
    assert retry.params == reopened.trials[0].params and workers.WORKER_ATTR not in retry.user_attrs
    assert retry.system_attrs["failed_trial"] == 0 and fresh.number == 1


def test_pruning_rule_sees_the_finished_trials_histories(data, tmp_path, monkeypatch):
    spec, train, valid, pairs = data
    calls = []

    def prune_from_the_second_trial(others, epoch, val_auc, cfg):
        calls.append(([list(h) for h in others], epoch, val_auc))
        return len(others) >= 1

    monkeypatch.setattr(search_mod, "should_prune", prune_from_the_second_trial)
    training = tiny_training(n_trials=3, max_epochs=2)
    study = run_search(SearchData(spec, train, valid, pairs), training, "dnn", storage_root=tmp_path)
    assert [t.state for t in study.trials] == [COMPLETE, PRUNED, PRUNED]
    history0 = study.trials[0].user_attrs[HISTORY_ATTR]
    assert len(history0) == 2 and calls[0] == ([], 1, history0[0]) and calls[1] == ([], 2, history0[1])
    assert calls[2][0] == [history0] and calls[2][1] == 1  # trial 1, first epoch: pruned there
    assert calls[3][0] == [history0, study.trials[1].user_attrs[HISTORY_ATTR]]
    assert len(study.trials[1].user_attrs[HISTORY_ATTR]) == 1 and study.trials[1].values is None
    assert best_parameters(study, training).source == "trial 0"


def test_all_pruned_gives_defaults(data, tmp_path, monkeypatch):
    spec, train, valid, pairs = data
    monkeypatch.setattr(search_mod, "should_prune", lambda *a: True)
    study = run_search(SearchData(spec, train, valid, pairs), tiny_training(n_trials=2), "dnn", storage_root=tmp_path)
    assert [t.state for t in study.trials] == [PRUNED, PRUNED]
    assert best_parameters(study, tiny_training()).source == "defaults"


def test_a_fresh_search_draws_the_same_points_and_each_trial_its_own(data, tmp_path):
    """One sampler stream per trial number: two fresh studies agree point for point (workers sharing a
    study therefore never draw the same point twice from a common seed)."""
    spec, train, valid, pairs = data
    runs = [
        run_search(
            SearchData(spec, train, valid, pairs), tiny_training(n_trials=3), "dnn", storage_root=tmp_path / name
        )
        for name in ("one", "two")
    ]
    points = [[_point(t) for t in study.trials] for study in runs]
    assert points[0] == points[1] and len(set(points[0])) == 3


def test_a_trial_beyond_n_trials_is_failed_unrun(data, tmp_path):
    """Two workers asking at the same instant: the later trial is surplus and fails before training."""
    spec, _, _, pairs = data
    study = open_study(tiny_training(n_trials=2), spec, len(pairs), "dnn", storage_root=tmp_path)
    first, second, third = study.ask(), study.ask(), study.ask()
    workers.check_not_surplus(study, second, n_trials=2)  # one trial before it: fine
    with pytest.raises(workers.SurplusTrialError, match="already has 2 trial"):
        workers.check_not_surplus(study, third, n_trials=2)
    assert study.trials[2].user_attrs["surplus"] is True and first.number == 0
