"""The Optuna search over the contrastive weight λ, the margin m (and τ where the loss has one).

The space is the monotonicity method's (``model_training.method``, :mod:`ccss_pipeline.model.methods`):
the above for CCSS; λ for ``pwl``; λ and the hint step for ``hints``. The objectives, the raw-grid
measurement and the selection are the same for every method.

One study per backbone (:mod:`ccss_pipeline.tuning.study`: its name, its sampler), with two
objectives measured on the validation split:

1. the validation AUC of the trial's fit (``TrainResult.best_val_auc``), maximised;
2. the raw-grid wrong-step share (``evaluation.raw_grid.wrong_step_share``: the share of steps along
   each directed feature's raw-value grid where the prediction moves against the declared
   direction), minimised.

Both are also stored as user attributes of the trial (``val_auc``, ``val_wrong_step_share``), with
the per-epoch validation AUC (``val_auc_by_epoch``) and the best epoch.

Pruning: Optuna's pruners do not support multi-objective studies (``Trial.report`` raises), so the
rule documented on ``PrunerConfig`` is applied here (``should_prune``): after epoch
``e > n_warmup_steps`` a trial stops when its validation AUC is below the median AUC of the finished
trials at the same epoch by more than ``min_delta`` (once ``n_startup_trials`` of them have a value
there). One epoch's noise cannot trigger it.

The validation edge test (``val_edge_wrong_share``: rows moving the wrong way across a bucket edge,
what a user changing a value sees) is measured on the same sweep; with the wrong-step share it enters
TPE as a constraint (``constraints_func``), so the sampler learns where the trials that meet both
targets are, without a third objective diluting the front.

The last ``search.refine_trials`` trials bisect λ (:mod:`ccss_pipeline.tuning.refinement`), no lower than
the low end of the method's own λ range. Selection (:mod:`ccss_pipeline.tuning.selection`): the best validation AUC
among the completed trials whose wrong-step share is at most ``search.max_violation`` and whose edge
test is at most ``search.max_edge_violation``; when none reaches both, the trial closest to them, with
a warning.

The study lives in SQLite (``storage_root / search.storage_path``) or in a database that several
workers share (``database_url``, from Kedro credentials; :mod:`ccss_pipeline.tuning.study_storage`),
with Optuna's heartbeat: the trial of a killed worker is failed and run again, those of live workers
are kept (:mod:`ccss_pipeline.tuning.workers`), and each worker returns once the study holds
``n_trials`` finished trials.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from tqdm.auto import tqdm

from ccss_pipeline.config import (
    BackboneConfig,
    ContrastiveConfig,
    OptimizerConfig,
    PrunerConfig,
    TrainingConfig,
)
from ccss_pipeline.evaluation.raw_grid import raw_grid_report
from ccss_pipeline.model.methods import MonotonicityMethod, method_of
from ccss_pipeline.model.scoring import score_fn
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.trainer import TrainResult, train_model
from ccss_pipeline.model.training_data import TrainingData
from ccss_pipeline.spec import FeatureSpec, ModelInputs
from ccss_pipeline.tuning.refinement import REFINEMENT_ATTR, propose
from ccss_pipeline.tuning.selection import AUC_ATTR, EDGE_ATTR, SHARE_ATTR, target_excess
from ccss_pipeline.tuning.study import backbone_config, open_study, search_digest, seed_sampler_for
from ccss_pipeline.tuning.workers import (
    COUNTED,
    FINISHED,
    WORKER_ATTR,
    SurplusTrialError,
    await_other_workers,
    check_not_surplus,
    retried,
    worker_id,
)

logger = logging.getLogger(__name__)

#: user attribute of a trial: list, element i is the validation AUC after epoch i + 1
HISTORY_ATTR = "val_auc_by_epoch"


class SearchFailedError(RuntimeError):
    """No trial of a study completed although some ran: defaults would silently stand in for a search."""


@dataclass(frozen=True)
class SearchData:
    """What every trial trains and validates on: the splits (in memory, or ``train`` streamed from
    parquet), the fixed pair table (None: pairs drawn per batch from ``shapley_p`` with ``move``)."""

    spec: FeatureSpec
    train: ModelInputs | TrainingData
    valid: ModelInputs | TrainingData
    pairs: PairTable | None
    shapley_p: np.ndarray | None = None
    move: str = "centre"


def should_prune(history_of_others: Sequence[Sequence[float]], epoch: int, val_auc: float, cfg: PrunerConfig) -> bool:
    """The pruning rule of ``PrunerConfig`` (epochs count from 1).

    ``history_of_others[j][e - 1]`` is finished trial j's validation AUC after epoch e; trials without
    a finite value at ``epoch`` do not count. Prune when the pruner is enabled, ``epoch >
    n_warmup_steps``, at least ``n_startup_trials`` trials have a value at ``epoch``, and ``val_auc``
    is below their median by more than ``min_delta``.
    """
    if not cfg.enabled or epoch <= cfg.n_warmup_steps or not math.isfinite(val_auc):
        return False
    at_epoch = [float(h[epoch - 1]) for h in history_of_others if len(h) >= epoch and h[epoch - 1] is not None]
    at_epoch = [v for v in at_epoch if math.isfinite(v)]
    if len(at_epoch) < cfg.n_startup_trials:
        return False
    return val_auc < float(np.median(at_epoch)) - cfg.min_delta


def _params_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's parameters; a queued one's before it runs (Optuna keeps them as ``fixed_params``)."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {}))


def _point(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def queue_refinement(study: optuna.Study, training: TrainingConfig) -> None:
    """Queue the next λ-refinement trial (:mod:`ccss_pipeline.tuning.refinement`) when the study has
    reached its last ``search.refine_trials`` trials (never more than the trials after the random
    start-up ones) and no queued trial is waiting already; nothing when there is nothing to refine.
    The bracket's floor is the low end of the method's own λ range (``MonotonicityMethod.weight_range``:
    ``search.weight`` for CCSS, ``pwl.weight_range`` / ``hints.weight_range`` for the others)."""
    search = training.search
    trials = study.get_trials(deepcopy=False)
    if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
        return
    n_refine = min(search.refine_trials, max(0, search.n_trials - search.n_startup_trials))
    counted = sum(t.state in COUNTED for t in trials)
    if n_refine == 0 or counted < search.n_trials - n_refine or counted >= search.n_trials:
        return
    floor = method_of(training).weight_range(training).low
    proposal = propose(trials, search.max_violation, search.max_edge_violation, floor, search.auc_tolerance)
    if proposal is None or _point(proposal.params) in {_point(_params_of(t)) for t in trials if t.state in COUNTED}:
        return  # another worker runs this very point (its result is not in yet): this one samples instead
    logger.info(
        "refinement trial: λ %.4g, between %.4g (misses a target) and %.4g (meets them), other parameters of the chosen trial",
        proposal.weight,
        proposal.low,
        proposal.high,
    )
    study.enqueue_trial(proposal.params, user_attrs={REFINEMENT_ATTR: [proposal.low, proposal.high]})


@dataclass
class _Objective:
    """One worker's objective: a trial's fit and its two measured objectives (module docstring)."""

    study: optuna.Study
    data: SearchData
    training: TrainingConfig
    backbone: BackboneConfig
    started: int = 0  # new trials this worker started (a dead worker's trial run again does not count)

    def __call__(self, trial: optuna.trial.Trial) -> tuple[float, float]:
        search, data = self.training.search, self.data
        trial.set_user_attr(WORKER_ATTR, worker_id())
        check_not_surplus(self.study, trial, search.n_trials)
        if not retried(trial):
            self.started += 1
        seed_sampler_for(self.study, search, trial.number)
        contrastive, method, optimizer = self._point(trial)
        result = train_model(
            spec=data.spec,
            train=data.train,
            valid=data.valid,
            backbone_cfg=self.backbone,
            contrastive_cfg=contrastive,
            optim_cfg=optimizer,
            pairs=data.pairs,
            on_epoch=self._pruner(trial),
            shapley_p=data.shapley_p,
            move=data.move,
            stream_buffer_rows=self.training.streaming.buffer_rows,
            method=method,
        )
        return self._measure(trial, result)

    def _point(self, trial: optuna.trial.Trial) -> tuple[ContrastiveConfig, MonotonicityMethod, OptimizerConfig]:
        """The trial's point: the method's space, then the learning rate where the search has a range."""
        training, search = self.training, self.training.search
        contrastive, method = method_of(training).suggest(trial, training)
        update: dict[str, Any] = {"max_epochs": search.max_epochs}
        if search.learning_rate is not None:
            lr = search.learning_rate
            update["learning_rate"] = trial.suggest_float("learning_rate", lr.low, lr.high, log=lr.log)
        return contrastive, method, training.optimizer.model_copy(update=update)

    def _pruner(self, trial: optuna.trial.Trial) -> Callable[[int, float], None]:
        """The fit's ``on_epoch``: record the AUC history, prune by ``should_prune`` against the finished trials."""
        history: list[float] = []

        def on_epoch(epoch: int, val_auc: float) -> None:
            history.extend([float("nan")] * (epoch - 1 - len(history)))
            history[epoch - 1 :] = [float(val_auc)]
            trial.set_user_attr(HISTORY_ATTR, list(history))
            others = [
                t.user_attrs.get(HISTORY_ATTR, [])
                for t in self.study.get_trials(deepcopy=False, states=FINISHED)
                if t.number != trial.number
            ]
            if should_prune(others, epoch, float(val_auc), self.training.search.pruner):
                raise optuna.TrialPruned(f"pruned after epoch {epoch} (val AUC {val_auc:.4f})")

        return on_epoch

    def _measure(self, trial: optuna.trial.Trial, result: TrainResult) -> tuple[float, float]:
        """(validation AUC, raw-grid wrong-step share), stored on the trial with the edge test and the
        constraints TPE reads."""
        search, data = self.training.search, self.data
        auc = float(result.best_val_auc)
        grid = raw_grid_report(
            score_fn(result.model),
            data.valid,
            data.spec,
            levels=search.grid_levels,
            rows=search.violation_rows,
            seed=search.seed,
        )
        share, edge = float(grid.pooled["wrong_step_share"]), float(grid.pooled["edge_wrong_share"])
        trial.set_user_attr(AUC_ATTR, auc)
        trial.set_user_attr(SHARE_ATTR, share)
        trial.set_user_attr(EDGE_ATTR, edge)
        for name, excess in zip(
            ("wrong_step_share", "edge_test"),
            target_excess(share, edge, search.max_violation, search.max_edge_violation),
            strict=True,
        ):
            trial.set_constraint(name, excess)
        trial.set_user_attr("best_epoch", int(result.best_epoch))
        logger.info(
            "trial %d (%s): val AUC %.5f, wrong-step share %.4f, edge test %.4f, %s",
            trial.number,
            self.backbone.name,
            auc,
            share,
            edge,
            trial.params,
        )
        return auc, share


def _run_trials(objective: _Objective, budget: int, done: int) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (or the timeout passes), one at a
    time, queueing the λ refinement before each; a progress bar on a terminal."""
    study, search = objective.study, objective.training.search
    deadline = None if search.timeout_s is None else time.monotonic() + search.timeout_s
    # finished trials of the study (every worker's) on a terminal; quiet in logs and CI. Optuna's own
    # bar counts one optimize() call, and each trial here is a call of its own.
    progress = tqdm(
        total=search.n_trials,
        initial=min(done, search.n_trials),
        desc=f"search {objective.backbone.name}",
        unit="trial",
        disable=None,
        dynamic_ncols=True,
    )
    with progress:
        while await_other_workers(study, search, deadline, may_start=objective.started < budget):
            queue_refinement(study, objective.training)
            # one trial at a time: Optuna's own loop runs it with the heartbeat, fails it on an error (re-raised)
            study.optimize(objective, n_trials=1, n_jobs=1, gc_after_trial=True, catch=(SurplusTrialError,))
            finished = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
            progress.update(max(0, min(finished, search.n_trials) - progress.n))


def run_search(
    data: SearchData,
    training: TrainingConfig,
    backbone: str,
    storage_root: Path | None = None,
    database_url: str | None = None,
) -> optuna.Study:
    """Run the backbone's trials still missing, alone or beside other workers sharing ``database_url``.

    Each trial trains on ``data.train`` with the fixed pair table ``data.pairs`` for
    ``search.max_epochs`` epochs and returns (validation AUC, validation raw-grid wrong-step share).
    Finished trials of an earlier, interrupted run count; a trial whose worker died is run again. The
    worker returns once the study holds ``search.n_trials`` finished trials (waiting for the other
    workers' last ones), so every worker selects from the same trials and reports the same result. A
    ``train`` streamed from parquet (:class:`ParquetModelInput`) has no pair table: its trials draw
    pairs per batch from ``data.shapley_p`` with ``data.move`` through a buffer of
    ``training.streaming.buffer_rows`` rows.
    """
    search, backbone_cfg = training.search, backbone_config(training, backbone)
    digest = search_digest(data.train, data.valid, data.pairs, training.streaming.buffer_rows)
    study = open_study(training, data.spec, digest, backbone, storage_root, database_url)
    study.set_user_attr("backbone", backbone)
    study.set_user_attr("max_violation", search.max_violation)  # read by plot_pareto_front
    study.set_user_attr("max_edge_violation", search.max_edge_violation)
    study.set_user_attr("auc_tolerance", search.auc_tolerance)
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    budget = max(0, search.n_trials - done)  # new trials this worker may start (retries of dead ones come on top)
    logger.info("study %s: %d finished trial(s), running %d more", study.study_name, done, budget)
    _run_trials(_Objective(study, data, training, backbone_cfg), budget, done)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    if optuna.trial.TrialState.COMPLETE not in states and optuna.trial.TrialState.FAIL in states:
        raise SearchFailedError(
            f"search for backbone {backbone}: every trial failed ({states.count(optuna.trial.TrialState.FAIL)} of "
            f"{len(states)} in study {study.study_name}), so there is no tuned λ/margin; a NaN validation AUC "
            "(one class in the validation split) or a training error is the usual cause — see the log above"
        )
    return study
