"""The search's last trials: bisect λ down to where the targets stop holding (the AUC CCSS pays).

Why: the AUC a CCSS model pays grows with λ, and the targets (wrong-step share, edge test) hold
above some λ and fail below it. TPE with a handful of trials lands anywhere above that line — the
default searches chose λ = 6–9 where λ = 3 met the targets too, and paid ~0.001 AUC for it. The last
``search.refine_trials`` trials therefore do not sample: each keeps every parameter of the chosen
trial but λ and tries the geometric middle of the bracket [largest λ known to miss a target, smallest
λ known to meet them]. A trial that meets the targets lowers the top of the bracket, one that misses
raises its bottom; the selection rule (:mod:`ccss_pipeline.tuning.selection`) then chooses among all
trials as before, so a refinement trial is chosen only when it is feasible and its validation AUC is
within ``search.auc_tolerance`` of the best feasible one.

The bracket is read from the finished trials themselves, so a resumed or shared search proposes the
same point; a trial is marked with the user attribute ``refinement`` (the bracket it bisected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from ccss_pipeline.tuning.selection import select_trial, trial_constraints

#: user attribute of a refinement trial: its bracket [low, high] of λ
REFINEMENT_ATTR = "refinement"
WEIGHT = "weight"


@dataclass(frozen=True)
class Proposal:
    """The next refinement trial: the chosen trial's parameters with λ = √(low · high)."""

    params: dict[str, Any]
    low: float
    high: float

    @property
    def weight(self) -> float:
        return float(self.params[WEIGHT])


def _feasible(t: optuna.trial.FrozenTrial, max_violation: float | None, max_edge: float | None) -> bool:
    return max(trial_constraints(t, max_violation, max_edge)) <= 0


def _same_except_weight(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
    keys = (set(a.params) | set(b.params)) - {WEIGHT}
    return all(a.params.get(k) == b.params.get(k) for k in keys)


def propose(
    trials: Sequence[optuna.trial.FrozenTrial],
    max_violation: float | None,
    max_edge_violation: float | None,
    weight_floor: float,
    auc_tolerance: float = 0.0,
    min_ratio: float = 1.15,
) -> Proposal | None:
    """The next point to try, or None when there is nothing to refine.

    Nothing to refine: no target is set, no completed trial meets the targets, or the bracket is
    already narrower than ``min_ratio`` (high / low). The top of the bracket is the smallest feasible λ
    among the chosen trial and the trials that share all its other parameters; the bottom is the
    largest λ below it that missed a target among those trials, else the largest miss of any completed
    trial below the smallest λ any trial met the targets with (other settings: only a hint), else
    ``weight_floor`` (the low end of the method's λ range).
    """
    if max_violation is None and max_edge_violation is None:
        return None
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None]
    best, feasible = select_trial(done, max_violation, max_edge_violation, auc_tolerance)
    if best is None or not feasible or WEIGHT not in best.params:
        return None
    family = [t for t in done if WEIGHT in t.params and _same_except_weight(t, best)]
    high = min(float(t.params[WEIGHT]) for t in family if _feasible(t, max_violation, max_edge_violation))
    # a pruned refinement trial (its AUC fell behind) counts as a miss, or it would be proposed again
    pruned = [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.PRUNED and WEIGHT in t.params and _same_except_weight(t, best)
    ]
    missed = [float(t.params[WEIGHT]) for t in family if not _feasible(t, max_violation, max_edge_violation)]
    missed += [float(t.params[WEIGHT]) for t in pruned]
    missed = [w for w in missed if w < high]
    if not missed:  # other settings' misses, only below every λ known to meet the targets (a miss at
        # λ = 8.3 with a 12x wider margin says nothing about λ = 8.8 with this one)
        weighted = [(t, float(t.params[WEIGHT])) for t in done if WEIGHT in t.params]
        met = min(w for t, w in weighted if _feasible(t, max_violation, max_edge_violation))
        missed = [w for t, w in weighted if w < met and not _feasible(t, max_violation, max_edge_violation)]
    low = max(missed) if missed else float(weight_floor)
    if low <= 0 or high / low < min_ratio:
        return None
    params = dict(best.params)
    params[WEIGHT] = math.sqrt(low * high)
    return Proposal(params=params, low=low, high=high)
