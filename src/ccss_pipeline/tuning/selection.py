"""Which trial of a backbone's study the final fits take, and why (the search's selection rule).

A trial records its validation AUC and raw-grid wrong-step share (its two objectives) and its
validation edge test (a user attribute). The targets: wrong-step share ≤ ``search.max_violation`` and
edge test ≤ ``search.max_edge_violation``. :func:`target_excess` turns them into Optuna constraint
values (≤ 0: met) — the search sets them on every trial so TPE models the feasible region — and
:func:`select_trial` chooses among the trials that meet both the weakest constraint (smallest λ) whose
validation AUC is within ``search.auc_tolerance`` of the best of them, or, when none meets both, the
one closest to them.

Why the weakest λ within a tolerance, not the best validation AUC: the AUC a CCSS model pays grows with
λ (docs/method.md §5), but over the few hundred validation rows a trial is scored on that cost is
smaller than the noise between fits — searches chose λ 8.8 over a feasible λ 5.5 for a validation AUC
0.0003 higher, and paid ~0.001 on the later test period. Among trials the validation AUC cannot tell
apart, the one that bends the fit least is the safer choice (the "one-standard-error" rule of CART and
glmnet, with the model order reversed: least constrained, not most regularised). Kept apart from :mod:`ccss_pipeline.tuning.search` (running the study) so the rule has
one home that the search, its plots and the tests read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import optuna

from ccss_pipeline.config import TrainingConfig
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.methods import get_method

logger = logging.getLogger(__name__)

#: user attributes of a trial
AUC_ATTR = "val_auc"
SHARE_ATTR = "val_wrong_step_share"
EDGE_ATTR = "val_edge_wrong_share"  # the validation edge test: a constraint, not an objective


def trial_constraints(
    trial: optuna.trial.FrozenTrial, max_violation: float | None, max_edge_violation: float | None
) -> tuple[float, float]:
    """A finished trial's :func:`target_excess` from its measured shares."""
    return target_excess(_measured_share(trial), trial.user_attrs.get(EDGE_ATTR), max_violation, max_edge_violation)


def target_excess(
    share: float | None, edge: float | None, max_violation: float | None, max_edge_violation: float | None
) -> tuple[float, float]:
    """Optuna constraint values (≤ 0: met): wrong-step share − its target, edge-test share − its target.

    A share not measured (a trial pruned before it) misses its target by 1; a target of None is met."""

    def excess(value: float | None, target: float | None) -> float:
        if target is None:
            return 0.0
        return 1.0 if value is None or not math.isfinite(value) else float(value) - target

    return excess(share, max_violation), excess(edge, max_edge_violation)


def _measured_share(trial: optuna.trial.FrozenTrial) -> float | None:
    """The wrong-step share: the objective once stored, its user attribute while Optuna's sampler sees
    the trial before its values are set (``constraints_func``)."""
    if trial.values is not None and len(trial.values) > 1:
        return float(trial.values[1])
    value = trial.user_attrs.get(SHARE_ATTR)
    return None if value is None else float(value)


def _objectives(t: optuna.trial.FrozenTrial) -> tuple[float, float] | None:
    values = t.values
    if values is None or len(values) < 2 or not all(math.isfinite(v) for v in values[:2]):
        return None
    return float(values[0]), float(values[1])


def select_trial(
    trials: Sequence[optuna.trial.FrozenTrial],
    max_violation: float | None,
    max_edge_violation: float | None,
    auc_tolerance: float = 0.0,
) -> tuple[optuna.trial.FrozenTrial | None, bool]:
    """The chosen trial among the COMPLETE ones and whether it meets the targets.

    Among those with wrong-step share ``<= max_violation`` and edge-test wrong share
    ``<= max_edge_violation`` (feasible), the smallest λ (parameter ``weight``; a trial without one
    counts as the largest) whose validation AUC is at least the best feasible AUC − ``auc_tolerance``
    (ties: higher AUC, then lower trial number); with ``auc_tolerance`` 0, the best validation AUC. If
    none meets both, the one closest to them — the smallest of its worst ratio to a target (ties: higher
    AUC, then lower number) — not feasible, with a warning. A target of None is always met. No completed
    trial: ``(None, False)``.
    """
    scored = [
        (t, v) for t in trials if t.state == optuna.trial.TrialState.COMPLETE and (v := _objectives(t)) is not None
    ]
    if not scored:
        return None, False
    feasible = [(t, v) for t, v in scored if max(trial_constraints(t, max_violation, max_edge_violation)) <= 0]
    if feasible:
        top = max(auc for _, (auc, _) in feasible)
        close = [(t, v) for t, v in feasible if v[0] >= top - auc_tolerance]
        best, _ = min(close, key=lambda tv: (_weight(tv[0]), -tv[1][0], tv[0].number))
        return best, True
    best, (auc, share) = min(
        scored, key=lambda tv: (_miss_ratio(tv[0], max_violation, max_edge_violation), -tv[1][0], tv[0].number)
    )
    logger.warning(
        "no completed trial reaches the targets (validation wrong-step share <= %s, edge test <= %s; %d completed); "
        "choosing trial %d, the closest: wrong-step share %.4g, edge test %s (val AUC %.4f)",
        max_violation,
        max_edge_violation,
        len(scored),
        best.number,
        share,
        best.user_attrs.get(EDGE_ATTR),
        auc,
    )
    return best, False


def _weight(trial: optuna.trial.FrozenTrial) -> float:
    """The trial's λ; a method without one (nothing to weaken) sorts after every λ."""
    value = trial.params.get("weight")
    return math.inf if value is None else float(value)


def _miss_ratio(trial: optuna.trial.FrozenTrial, max_violation: float | None, max_edge: float | None) -> float:
    """How far a trial is from its targets: the larger of measured / target over the targets set."""
    ratios = [0.0]
    for value, target in ((_measured_share(trial), max_violation), (trial.user_attrs.get(EDGE_ATTR), max_edge)):
        if target is not None:
            ratios.append(math.inf if value is None else float(value) / max(target, 1e-12))
    return max(ratios)


def best_parameters(study: optuna.Study, training: TrainingConfig, spec_fingerprint: str | None = None) -> ChosenParams:
    """Parameters of the chosen trial (``select_trial``); with no completed trial, the configured defaults."""
    base = training.contrastive
    max_violation, max_edge = training.search.max_violation, training.search.max_edge_violation
    trials = study.get_trials(deepcopy=False)
    best, feasible = select_trial(trials, max_violation, max_edge, training.search.auc_tolerance)
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and _objectives(t) is not None]
    common = {
        "loss": base.loss,
        "max_violation": max_violation,
        "max_edge_violation": max_edge,
        "auc_tolerance": training.search.auc_tolerance,
        "n_feasible": sum(max(trial_constraints(t, max_violation, max_edge)) <= 0 for t in completed),
        "study": study.study_name,
        "n_trials": len(trials),
        "spec_fingerprint": spec_fingerprint,
        "method": training.method,
    }
    if best is None:
        return ChosenParams(
            weight=base.weight,
            margin=base.margin,
            temperature=base.temperature,
            learning_rate=training.optimizer.learning_rate,
            source="defaults",
            val_auc=None,
            val_wrong_step_share=None,
            feasible=None,
            **common,
        )
    return ChosenParams(
        weight=best.params["weight"],
        margin=best.params.get("margin", base.margin),  # not searched by every method
        temperature=best.params.get("temperature", base.temperature),
        learning_rate=best.params.get("learning_rate", training.optimizer.learning_rate),
        source=f"trial {best.number}",
        val_auc=float(best.values[0]),
        val_wrong_step_share=float(best.values[1]),
        val_edge_wrong_share=best.user_attrs.get(EDGE_ATTR),
        edge_weight=best.params.get("edge_weight"),
        edge_margin=best.params.get("edge_margin"),
        pair_fraction=best.params.get("pair_fraction"),
        method_params={k: best.params[k] for k in get_method(training.method).own_params if k in best.params},
        feasible=feasible,
        **common,
    )
