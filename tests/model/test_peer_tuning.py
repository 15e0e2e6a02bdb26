"""The resumable single-objective study of the monotone-by-construction models (``model/peer_tuning.py``; the search itself is ``ccss_pipeline.tuning``)."""

from __future__ import annotations

import optuna
import pytest

from ccss_pipeline.model.peer_tuning import StudyPlan, completed, run_trials


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    return -(x**2)


def test_a_study_in_storage_resumes_to_its_budget_with_new_draws(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    first = run_trials(_objective, 3, seed=0, n_startup_trials=3, study_name="s", storage=storage)
    again = run_trials(_objective, 3, seed=0, n_startup_trials=3, study_name="s", storage=storage)
    assert completed(first) == completed(again) == 3  # nothing left to run
    more = run_trials(_objective, 5, seed=0, n_startup_trials=3, study_name="s", storage=storage)
    points = [t.params["x"] for t in more.trials]
    assert len(points) == 5 and len(set(points)) == 5  # the resumed run does not repeat the first draws


def test_a_fresh_study_is_seeded_and_zero_trials_runs_nothing():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    a = run_trials(_objective, 4, seed=1, n_startup_trials=2)
    b = run_trials(_objective, 4, seed=1, n_startup_trials=2)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert completed(run_trials(_objective, 0, seed=1)) == 0
    with pytest.raises(ValueError):
        run_trials(_objective, -1, seed=1)


def test_a_study_plan_runs_the_same_study_as_run_trials_under_the_peers_name(tmp_path):
    """A peer (``tune_gbdt``, ``tune_monotone_net``) runs its study through a :class:`StudyPlan`: the
    plan's name when it has one, else the peer's; the same trials as :func:`run_trials` itself."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direct = run_trials(_objective, 4, seed=1, n_startup_trials=2, study_name="gbdt")
    planned = StudyPlan(n_trials=4, n_startup_trials=2).run(_objective, seed=1, default_name="gbdt")
    assert planned.study_name == "gbdt" and [t.params for t in planned.trials] == [t.params for t in direct.trials]
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    named = StudyPlan(n_trials=2, storage=storage, study_name="mine").run(_objective, seed=0, default_name="gbdt")
    assert named.study_name == "mine" and completed(optuna.load_study(study_name="mine", storage=storage)) == 2
