"""The λ refinement that ends a search: the bracket it bisects, when it stops, and a real search's last trial."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from ccss_pipeline.config import HintsConfig, PwlConfig, SearchRange
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.tuning.refinement import REFINEMENT_ATTR, propose
from ccss_pipeline.tuning.search import SearchData, queue_refinement, run_search
from ccss_pipeline.tuning.selection import EDGE_ATTR, select_trial
from tests.model.conftest import make_inputs, make_spec
from tests.support.configs import tiny_training

optuna.logging.set_verbosity(optuna.logging.WARNING)

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
DISTS = {
    "weight": optuna.distributions.FloatDistribution(0.1, 10.0, log=True),
    "margin": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
}
TARGETS = {"max_violation": 0.005, "max_edge_violation": 0.01}


def _trial(auc: float | None, share: float | None, weight: float, margin: float, state=COMPLETE, edge: float = 0.0):
    return optuna.trial.create_trial(
        values=[auc, share] if state == COMPLETE else None,
        params={"weight": weight, "margin": margin},
        distributions=DISTS,
        user_attrs={EDGE_ATTR: edge} if state == COMPLETE else {},
        state=state,
    )


def _propose(trials):
    return propose(trials, weight_floor=0.1, **TARGETS)


def test_the_first_proposal_bisects_between_the_largest_miss_below_and_the_chosen_trial():
    trials = [
        _trial(0.780, 0.020, 1.0, 0.010),  # misses the wrong-step target
        _trial(0.779, 0.001, 2.0, 0.050, edge=0.05),  # misses the edge target: the largest miss below
        _trial(0.770, 0.000, 8.0, 0.005),  # feasible, the chosen one
        _trial(0.760, 0.000, 9.5, 0.020),  # feasible, lower AUC
    ]
    p = _propose(trials)
    assert p is not None
    assert (p.low, p.high) == (2.0, 8.0)
    assert p.weight == pytest.approx(4.0)
    assert p.params["margin"] == 0.005  # every other parameter is the chosen trial's


def test_the_bracket_tops_at_the_trial_the_selection_chooses_within_the_auc_tolerance():
    trials = [
        _trial(0.780, 0.020, 1.0, 0.010),  # a miss
        _trial(0.7700, 0.000, 8.0, 0.005),  # best feasible AUC
        _trial(0.7697, 0.000, 5.0, 0.020),  # within 0.0005 of it, weaker: chosen with the tolerance
    ]
    assert _propose(trials).params["margin"] == 0.005  # tolerance 0: trial 1's family (its λ 8 alone)
    p = propose(trials, weight_floor=0.1, auc_tolerance=0.0005, **TARGETS)
    assert p is not None and p.params["margin"] == 0.020 and (p.low, p.high) == (1.0, 5.0)


def test_a_feasible_refinement_lowers_the_top_and_a_miss_raises_the_bottom():
    base = [_trial(0.780, 0.020, 1.0, 0.010), _trial(0.770, 0.000, 8.0, 0.005)]
    met = _propose([*base, _trial(0.775, 0.001, math.sqrt(8.0), 0.005)])
    assert met is not None and (met.low, met.high) == (1.0, pytest.approx(math.sqrt(8.0)))
    missed = _propose([*base, _trial(0.776, 0.030, math.sqrt(8.0), 0.005)])
    assert missed is not None and (missed.low, missed.high) == (pytest.approx(math.sqrt(8.0)), 8.0)
    # a miss at the chosen trial's other parameters outranks a miss of another family
    assert missed.weight == pytest.approx(math.sqrt(math.sqrt(8.0) * 8.0))
    pruned = _propose([*base, _trial(None, None, 4.0, 0.005, state=PRUNED)])
    assert pruned is not None and pruned.low == 4.0  # a pruned refinement is not proposed again


def test_without_a_miss_below_the_bracket_starts_at_the_range_floor():
    p = _propose([_trial(0.77, 0.0, 5.0, 0.01)])
    assert p is not None and (p.low, p.high) == (0.1, 5.0)


@pytest.mark.parametrize(
    "trials",
    [
        [_trial(0.78, 0.02, 1.0, 0.01), _trial(0.77, 0.03, 8.0, 0.005)],  # nothing meets the targets
        [_trial(0.78, 0.02, 7.5, 0.005), _trial(0.77, 0.0, 8.0, 0.005)],  # bracket already narrow
        [],
    ],
)
def test_nothing_to_refine(trials):
    assert _propose(trials) is None


def test_no_target_means_no_refinement():
    assert propose([_trial(0.77, 0.0, 5.0, 0.01)], None, None, 0.1) is None


def test_a_search_ends_with_a_refinement_trial_at_the_chosen_trials_parameters(tmp_path):
    spec = make_spec()
    train, valid = make_inputs(spec, 400, seed=3), make_inputs(spec, 200, seed=4)
    p = np.array([0.0 if f.n_buckets < 2 else 1.0 for f in spec.directed])
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p / p.sum(), seed=0)
    training = tiny_training(n_trials=3, refine_trials=1, max_violation=1.0, max_edge_violation=1.0)
    study = run_search(SearchData(spec, train, valid, pairs), training, "dnn", storage_root=tmp_path)
    trials = study.trials
    assert [t.state for t in trials] == [COMPLETE, COMPLETE, COMPLETE]
    assert all(REFINEMENT_ATTR not in t.user_attrs for t in trials[:2])
    chosen, feasible = select_trial(trials[:2], 1.0, 1.0)
    assert feasible and chosen is not None
    last = trials[2]
    assert last.user_attrs[REFINEMENT_ATTR] == [0.1, pytest.approx(chosen.params["weight"])]
    assert last.params["margin"] == chosen.params["margin"]
    assert last.params["weight"] == pytest.approx(math.sqrt(0.1 * chosen.params["weight"]))


def test_another_settings_miss_above_a_met_lambda_is_no_bracket_bottom():
    """DeepFM's search on the default data: a miss at λ 8.3 with a 12x wider margin (edge test 1.01%)
    sat just below the chosen λ 8.8, and took the bracket to nothing; λ 6.3 met the targets elsewhere."""
    trials = [
        _trial(0.7790, 0.020, 1.34, 0.0014),
        _trial(0.7783, 0.000, 8.84, 0.0053),  # chosen
        _trial(0.7781, 0.000, 6.33, 0.0054),  # met, another margin
        _trial(0.7747, 0.000, 8.31, 0.0662, edge=0.0101),  # missed, another margin, above 6.33
    ]
    p = _propose(trials)
    assert p is not None and (p.low, p.high) == (1.34, 8.84)


def test_a_point_another_worker_runs_is_not_queued_again(tmp_path):
    """Two workers on one study: the first runs the refinement point; the second, seeing the same
    finished trials, would propose the same point — it samples a new one instead."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for t in [_trial(0.780, 0.020, 1.0, 0.010), _trial(0.770, 0.000, 8.0, 0.005)]:
        study.add_trial(t)
    training = tiny_training(n_trials=4, n_startup_trials=1, refine_trials=2)
    queue_refinement(study, training)
    (queued,) = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    running = study.ask()  # the first worker takes it: RUNNING, its point fixed
    assert running.number == queued.number
    queue_refinement(study, training)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]


@pytest.mark.parametrize(
    "method, block",
    [
        ("pwl", PwlConfig(weight_range=SearchRange(low=0.5, high=10.0))),
        ("hints", HintsConfig(weight_range=SearchRange(low=0.4, high=10.0), step_range=None)),
    ],
)
def test_the_bracket_floor_is_the_low_end_of_the_methods_own_lambda_range(method, block):
    """A method that searches λ in a range of its own (``pwl.weight_range``, ``hints.weight_range``)
    refines no lower than that range's low end, not ``search.weight``'s (which it never draws from)."""
    training = tiny_training(n_trials=3, n_startup_trials=1, refine_trials=1, weight=SearchRange(low=0.1, high=10.0))
    training = training.model_copy(update={"method": method, method: block})
    floor = getattr(training, method).weight_range.low
    study = optuna.create_study(directions=["maximize", "minimize"])
    # every trial meets the targets: nothing missed, so the bracket's bottom is the floor
    dists = {"weight": optuna.distributions.FloatDistribution(floor, 10.0, log=True)}
    for auc, weight in ((0.780, 4.0), (0.770, 8.0)):
        study.add_trial(
            optuna.trial.create_trial(
                values=[auc, 0.0], params={"weight": weight}, distributions=dists, user_attrs={EDGE_ATTR: 0.0}
            )
        )
    queue_refinement(study, training)
    (queued,) = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert queued.user_attrs[REFINEMENT_ATTR] == [floor, 4.0]
    assert queued.system_attrs["fixed_params"]["weight"] == pytest.approx(math.sqrt(floor * 4.0))
