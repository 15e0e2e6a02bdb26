"""The Optuna search over the contrastive weight λ, the margin m (and τ where the loss has one).

The space is the monotonicity method's (``model_training.method``, :mod:`ccss_pipeline.model.methods`):
the above for CCSS; λ for ``pwl``; λ and the hint step for ``hints``. The objectives, the raw-grid
measurement and the selection are the same for every method.

One study per backbone, with two objectives measured on the validation split:

1. the validation AUC of the trial's fit (``TrainResult.best_val_auc``), maximised;
2. the raw-grid wrong-step share (``evaluation.raw_grid.wrong_step_share``: the share of steps along
   each directed feature's raw-value grid where the prediction moves against the declared
   direction), minimised.

Both are also stored as user attributes of the trial (``val_auc``, ``val_wrong_step_share``), with
the per-epoch validation AUC (``val_auc_by_epoch``) and the best epoch.

Sampler: multivariate TPE after ``search.n_startup_trials`` random trials, re-seeded for every trial
from ``(search.seed, trial number)``, so a fresh search is reproducible, a resumed one continues with
new draws instead of repeating the points of its first run, and workers sharing a study never draw
from one common seed. A killed trial's queued copy does not count (:func:`draw_number`), so a search
killed mid-trial draws, once resumed, what an uninterrupted one draws.

Pruning: Optuna's pruners do not support multi-objective studies (``Trial.report`` raises), so the
rule documented on ``PrunerConfig`` is applied here (``should_prune``): after epoch
``e > n_warmup_steps`` a trial stops when its validation AUC is below the median AUC of the finished
trials at the same epoch by more than ``min_delta`` (once ``n_startup_trials`` of them have a value
there). One epoch's noise cannot trigger it.

The validation edge test (``val_edge_wrong_share``: rows moving the wrong way across a bucket edge,
what a user changing a value sees) is measured on the same sweep; with the wrong-step share it enters
TPE as a constraint (``constraints_func``), so the sampler learns where the trials that meet both
targets are, without a third objective diluting the front.

Selection (:mod:`ccss_pipeline.model.selection`): the best validation AUC among the completed trials whose wrong-step
share is at most ``search.max_violation`` and whose edge test is at most ``search.max_edge_violation``;
when none reaches both, the trial closest to them, with a warning.

The study lives in SQLite (``storage_root / search.storage_path``) or in a database that several
workers share (``database_url``, from Kedro credentials; ``model.study_storage``), with Optuna's
heartbeat: the trial of a killed worker is failed and run again, those of live workers are kept, and
each worker returns once the study holds ``n_trials`` finished trials. Its name carries the backbone and
a hash of everything the trials' results depend on (data, spec, backbone, budget, loss, search space,
measurement settings), so an interrupted search resumes with its finished trials kept, raising
``n_trials`` or changing the selection target (``max_violation``) or the pruner continues the same
study, and a changed configuration starts a new study instead of mixing incompatible trials.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from ccss_pipeline.config import BackboneConfig, PrunerConfig, SearchConfig, TrainingConfig
from ccss_pipeline.evaluation.plots import figure_of, message_figure
from ccss_pipeline.evaluation.raw_grid import raw_grid_report
from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.model.checkpoint import pairs_digest
from ccss_pipeline.model.methods import method_of
from ccss_pipeline.model.methods.ccss import suggest_contrastive as suggest_contrastive  # CCSS's space, re-exported
from ccss_pipeline.model.refinement import REFINEMENT_ATTR, propose
from ccss_pipeline.model.scoring import score_fn
from ccss_pipeline.model.selection import (
    AUC_ATTR,
    EDGE_ATTR,
    SHARE_ATTR,
    select_trial,
    target_excess,
)
from ccss_pipeline.model.streaming import ParquetModelInput
from ccss_pipeline.model.study_storage import SearchStorageError, open_storage, redact, safe_url
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.trainer import train_model
from ccss_pipeline.spec import FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)

#: user attributes of a trial
WORKER_ATTR = "worker"  # host:pid of the process running the trial
HISTORY_ATTR = "val_auc_by_epoch"  # list: element i is the validation AUC after epoch i + 1
#: the two objectives, in Optuna's order
DIRECTIONS: tuple[Literal["maximize"], Literal["minimize"]] = ("maximize", "minimize")
TARGET_NAMES = ["validation AUC", "validation wrong-step share"]
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

# Fields of the search configuration that do not change what a trial computes: the budget, where the
# study is stored, the selection target, the pruner and the number of random start-up trials (which
# the configuration forces below n_trials, so raising n_trials may need it raised too).
_NOT_HASHED = {
    "n_trials",
    "timeout_s",
    "storage_path",
    "max_violation",
    "max_edge_violation",
    "pruner",
    "n_startup_trials",
    "refine_trials",
    "heartbeat_s",
    "stale_after_s",
    "max_retry",
}
# How trials draw their points (one sampler stream per trial number); a study of another scheme would
# mix draws of both, so the scheme is part of the study's name.
_SAMPLING = "sampler-seeded-per-trial-number"


def _backbone_config(training: TrainingConfig, backbone: str) -> BackboneConfig:
    """The shared backbone settings with ``name`` set, validated (``model_copy`` would not validate)."""
    return BackboneConfig.model_validate({**training.backbone.model_dump(), "name": backbone})


def study_name(training: TrainingConfig, spec: FeatureSpec, data_digest: str, backbone: str) -> str:
    """``<search.study_name>-<backbone>-<hash>``, ``<search.study_name>-<method>-<backbone>-<hash>`` for a
    method other than CCSS (``model_training.method``), so a ``pwl`` study never resumes a ``ccss`` one.

    The hash covers the data (spec and content digest), the backbone, the trial budget and optimizer
    (less ``max_epochs``, which the search replaces by ``search.max_epochs``), the loss (less the
    values the search tunes), the search space and measurement settings (less ``_NOT_HASHED``) and,
    for a method other than CCSS, its own settings block (CCSS adds nothing: its studies keep their names).
    """
    method_key = method_of(training).study_key(training)
    payload = content_hash(
        [
            spec.to_dict(),
            data_digest,
            _backbone_config(training, backbone).model_dump(),
            training.optimizer.model_dump(exclude={"max_epochs"}),
            training.contrastive.model_dump(exclude={"weight", "margin", "temperature"}),
            training.search.model_dump(exclude=_NOT_HASHED),
            _SAMPLING,
            *method_key,
        ],
        length=10,
    )
    prefix = training.search.study_name + ("" if not method_key else f"-{training.method}")
    return f"{prefix}-{backbone}-{payload}"


def search_digest(
    train: ModelInputs | ParquetModelInput,
    valid: ModelInputs | ParquetModelInput,
    pairs: PairTable | None,
    stream_buffer_rows: int | None = None,
) -> str:
    """Content hash of what every trial trains and validates on (a streamed split: its files; its
    pairs are drawn per batch, so the buffer that shapes the batches stands in for the pair table)."""
    drawn = f"stream{stream_buffer_rows}" if isinstance(train, ParquetModelInput) else ""
    return "-".join([train.digest(), valid.digest(), pairs_digest(pairs) or drawn])


def sampler_seed(seed: int, trial_number: int) -> int:
    """Seed of the sampler that draws trial ``trial_number``'s point.

    Per trial, not per run: a resumed run must not restart the random stream its first run used (it
    would re-draw the same start-up points), and two workers must not share one.
    """
    return int(np.random.SeedSequence([int(seed), int(trial_number)]).generate_state(1)[0])


def make_sampler(search: SearchConfig, trial_number: int) -> optuna.samplers.TPESampler:
    """Multivariate TPE after ``search.n_startup_trials`` random trials, seeded by ``sampler_seed``.
    TPE reads each finished trial's constraints (``Trial.set_constraint``, :func:`trial_constraints`)
    and models the trials that miss a target apart, so it learns where the feasible ones are."""
    return optuna.samplers.TPESampler(
        seed=sampler_seed(search.seed, trial_number),
        n_startup_trials=search.n_startup_trials,
        multivariate=True,  # the default is False for multi-objective studies; λ and m interact
    )


class SearchFailedError(RuntimeError):
    """No trial of a study completed although some ran: defaults would silently stand in for a search."""


class SurplusTrialError(RuntimeError):
    """Workers asked for trials at the same instant and this one is beyond ``n_trials``: it is failed unrun."""


def worker_id() -> str:
    """``host:pid`` of this process, stored on each trial it runs (user attribute ``worker``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _worker_alive(worker: str) -> bool | None:
    """True/False for a worker on this host (is its process running?), None for another host's."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def search_grace(study: optuna.Study) -> float:
    """Seconds a RUNNING trial may go without a sign of its worker: the storage's heartbeat grace."""
    return float(getattr(study._storage, "grace_period", None) or 30)


def fail_dead_trials(study: optuna.Study) -> int:
    """Fail the RUNNING trials whose process is gone and queue them again; a live worker's trials are kept.

    Dead: a trial of a process on this host that no longer runs, a trial whose Optuna heartbeat has
    been silent for ``search.stale_after_s`` (any host), or a trial that has recorded no worker for that
    long (not started by this code, e.g. a bare ``study.ask()``, so nothing will ever finish it).
    Each failed trial of a worker goes
    through the storage's ``RetryHeartbeatStaleTrialCallback``: a copy with its parameters waits for the next
    worker (``search.max_retry`` times at most), so a killed worker loses no trial.
    """
    storage = study._storage
    with warnings.catch_warnings():  # experimental since Optuna 2.9, stable in practice
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if not running:
            return 0
        optuna.storages.fail_stale_trials(study)  # the heartbeat rule, with the retry callback
        retry = (
            storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]  # heartbeat storages only
            if hasattr(storage, "get_heartbeat_interval")
            else None
        )
    n = len(running) - len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER_ATTR)
        # a worker records itself right after Optuna starts the trial: give it that moment
        unclaimed = worker is None and (
            t.datetime_start is None or (now - t.datetime_start).total_seconds() > search_grace(study)
        )
        if unclaimed or (worker is not None and _worker_alive(str(worker)) is False):
            try:
                failed = storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:  # finished meanwhile by its live owner
                continue
            if failed:
                n += 1
                if retry is not None and worker is not None:
                    retry(study, study._storage.get_trial(t._trial_id))
    return n


def open_study(
    training: TrainingConfig,
    spec: FeatureSpec,
    data_digest: str,
    backbone: str,
    storage_root: Path | None = None,
    database_url: str | None = None,
) -> optuna.Study:
    """Create or resume the backbone's two-objective study (``load_if_exists``): in the embedded SQLite
    file, or in the database at ``database_url`` that several workers share.

    RUNNING trials whose worker died (a killed run) are failed and queued again first, while those of
    a worker that is still alive are kept.
    """
    search = training.search
    root = storage_root or Path.cwd()
    storage = open_storage(root, search, database_url)
    where = safe_url(database_url) if database_url else str(root / search.storage_path)
    name = study_name(training, spec, data_digest, backbone)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=list(DIRECTIONS),
            sampler=make_sampler(search, 0),  # re-seeded per trial (``_seed_sampler_for``)
            load_if_exists=True,
        )
    except Exception as exc:  # a corrupt database surfaces here as an SQLAlchemy error
        raise SearchStorageError(
            f"{where}: the Optuna study database cannot be read "
            f"({type(exc).__name__}: {redact(str(exc), database_url).splitlines()[0][:200]}); move it away or "
            "delete it to start the search afresh"
        ) from exc
    if list(study.directions) != [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]:
        raise ValueError(f"study {name} in {where} does not have the directions {DIRECTIONS}")
    dead = fail_dead_trials(study)
    if dead:
        logger.warning("marked %d trial(s) left running by an interrupted search as failed (queued again)", dead)
    return study


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


_COUNTED = (*FINISHED, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


def draw_number(trials: Sequence[optuna.trial.FrozenTrial], trial_number: int) -> int:
    """The number trial ``trial_number`` would have had in a run that was never killed.

    A dead worker's trial is failed and queued again as a copy (system attribute ``failed_trial``),
    which takes a new number: numbering the draws by trial number would shift every later draw by one
    per kill, so a search killed mid-trial chose another λ than an uninterrupted one. Copies are not
    counted (each stands in for the trial it copies, whose number it inherits), so a kill changes no
    draw; distinct new trials still get distinct numbers (each copy lies after the trial it copies).
    """
    by_number = {t.number: t for t in trials}
    trial = by_number.get(trial_number)
    origin = trial.system_attrs.get("failed_trial") if trial is not None else None
    if origin is not None and int(origin) != trial_number:
        return draw_number(trials, int(origin))
    copies = sum(1 for t in trials if t.number < trial_number and t.system_attrs.get("failed_trial") is not None)
    return trial_number - copies


def _seed_sampler_for(study: optuna.Study, search: SearchConfig, trial_number: int) -> None:
    """Give the trial its own sampler stream, seeded by ``(search.seed, draw number)`` (:func:`draw_number`).

    Workers sharing a study would otherwise start from the same seed and draw the same points; a
    resumed run continues with new numbers, so it never repeats its first run's draws; a run resumed
    after a kill mid-trial draws what the uninterrupted run would have drawn.
    """
    study.sampler = make_sampler(search, draw_number(study.get_trials(deepcopy=False), trial_number))


def _retried(trial: optuna.trial.Trial) -> bool:
    """Whether the trial is a queued copy of a failed one (``RetryHeartbeatStaleTrialCallback``'s system attribute)."""
    return trial.storage.get_trial(trial._trial_id).system_attrs.get("failed_trial") is not None


def _check_not_surplus(study: optuna.Study, trial: optuna.trial.Trial, n_trials: int) -> None:
    """Raise ``SurplusTrialError`` when ``n_trials`` trials that are not failed precede this one (two
    workers asked at the same instant): the study ends with exactly ``n_trials`` finished trials."""
    before = [t for t in study.get_trials(deepcopy=False, states=_COUNTED) if t.number < trial.number]
    if len(before) >= n_trials:
        trial.set_user_attr("surplus", True)
        raise SurplusTrialError(
            f"trial {trial.number}: the study already has {len(before)} trial(s) for "
            f"n_trials={n_trials} (another worker asked at the same time); not run"
        )


def _await_other_workers(study: optuna.Study, search: SearchConfig, deadline: float | None, may_start: bool) -> bool:
    """True when this worker has a trial to run: a queued one (a dead worker's, run again) or, while
    ``may_start``, a new one the study still needs. Otherwise waits while other workers' trials run
    (one of them may die and be queued again); False when none runs or the deadline passed."""
    while True:
        fail_dead_trials(study)
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED for t in trials)
        if finished >= search.n_trials or (deadline is not None and time.monotonic() > deadline):
            return False
        if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
            return True
        running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
        if may_start and finished + running < search.n_trials:
            return True
        if running == 0:
            return False
        time.sleep(min(1.0, search.heartbeat_s / 2))


def _params_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's parameters; a queued one's before it runs (Optuna keeps them as ``fixed_params``)."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {}))


def _point(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def _queue_refinement(study: optuna.Study, search: SearchConfig) -> None:
    """Queue the next λ-refinement trial (:mod:`ccss_pipeline.model.refinement`) when the study has
    reached its last ``search.refine_trials`` trials (never more than the trials after the random
    start-up ones) and no queued trial is waiting already; nothing when there is nothing to refine."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
        return
    n_refine = min(search.refine_trials, max(0, search.n_trials - search.n_startup_trials))
    counted = sum(t.state in _COUNTED for t in trials)
    if n_refine == 0 or counted < search.n_trials - n_refine or counted >= search.n_trials:
        return
    proposal = propose(trials, search.max_violation, search.max_edge_violation, search.weight.low)
    if proposal is None or _point(proposal.params) in {_point(_params_of(t)) for t in trials if t.state in _COUNTED}:
        return  # another worker runs this very point (its result is not in yet): this one samples instead
    logger.info(
        "refinement trial: λ %.4g, between %.4g (misses a target) and %.4g (meets them), other parameters of the chosen trial",
        proposal.weight,
        proposal.low,
        proposal.high,
    )
    study.enqueue_trial(proposal.params, user_attrs={REFINEMENT_ATTR: [proposal.low, proposal.high]})


def run_search(
    spec: FeatureSpec,
    train: ModelInputs | ParquetModelInput,
    valid: ModelInputs | ParquetModelInput,
    pairs: PairTable | None,
    training: TrainingConfig,
    backbone: str,
    storage_root: Path | None = None,
    database_url: str | None = None,
    shapley_p: np.ndarray | None = None,
    move: str = "centre",
) -> optuna.Study:
    """Run the backbone's trials still missing, alone or beside other workers sharing ``database_url``.

    Each trial trains on ``train`` with the fixed pair table ``pairs`` for ``search.max_epochs``
    epochs and returns (validation AUC, validation raw-grid wrong-step share). Finished trials of an
    earlier, interrupted run count; a trial whose worker died is run again. The worker returns once
    the study holds ``search.n_trials`` finished trials (waiting for the other workers' last ones), so
    every worker selects from the same trials and reports the same result. A ``train`` streamed from
    parquet (:class:`ParquetModelInput`) has no pair table: its trials draw pairs per batch from
    ``shapley_p`` with ``move`` through a buffer of ``training.streaming.buffer_rows`` rows.
    """
    search = training.search
    backbone_cfg = _backbone_config(training, backbone)
    buffer_rows = training.streaming.buffer_rows
    study = open_study(
        training, spec, search_digest(train, valid, pairs, buffer_rows), backbone, storage_root, database_url
    )
    study.set_user_attr("backbone", backbone)
    study.set_user_attr("max_violation", search.max_violation)  # read by plot_pareto_front
    study.set_user_attr("max_edge_violation", search.max_edge_violation)
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    budget = max(0, search.n_trials - done)  # new trials this worker may start (retries of dead ones come on top)
    logger.info("study %s: %d finished trial(s), running %d more", study.study_name, done, budget)
    started = [0]

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        trial.set_user_attr(WORKER_ATTR, worker_id())
        _check_not_surplus(study, trial, search.n_trials)
        if not _retried(trial):
            started[0] += 1
        _seed_sampler_for(study, search, trial.number)
        contrastive, method = method_of(training).suggest(trial, training)  # the method's search space
        update: dict[str, Any] = {"max_epochs": search.max_epochs}
        if search.learning_rate is not None:
            lr = search.learning_rate
            update["learning_rate"] = trial.suggest_float("learning_rate", lr.low, lr.high, log=lr.log)
        optimizer = training.optimizer.model_copy(update=update)
        history: list[float] = []

        def on_epoch(epoch: int, val_auc: float) -> None:
            history.extend([float("nan")] * (epoch - 1 - len(history)))
            history[epoch - 1 :] = [float(val_auc)]
            trial.set_user_attr(HISTORY_ATTR, list(history))
            others = [
                t.user_attrs.get(HISTORY_ATTR, [])
                for t in study.get_trials(deepcopy=False, states=FINISHED)
                if t.number != trial.number
            ]
            if should_prune(others, epoch, float(val_auc), search.pruner):
                raise optuna.TrialPruned(f"pruned after epoch {epoch} (val AUC {val_auc:.4f})")

        result = train_model(
            spec=spec,
            train=train,
            valid=valid,
            backbone_cfg=backbone_cfg,
            contrastive_cfg=contrastive,
            optim_cfg=optimizer,
            pairs=pairs,
            on_epoch=on_epoch,
            shapley_p=shapley_p,
            move=move,
            stream_buffer_rows=buffer_rows,
            method=method,
        )
        auc = float(result.best_val_auc)
        grid = raw_grid_report(
            score_fn(result.model), valid, spec, levels=search.grid_levels, rows=search.violation_rows, seed=search.seed
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
            backbone,
            auc,
            share,
            edge,
            trial.params,
        )
        return auc, share

    deadline = None if search.timeout_s is None else time.monotonic() + search.timeout_s
    # finished trials of the study (every worker's) on a terminal; quiet in logs and CI. Optuna's own
    # bar counts one optimize() call, and each trial here is a call of its own.
    progress = tqdm(
        total=search.n_trials,
        initial=min(done, search.n_trials),
        desc=f"search {backbone}",
        unit="trial",
        disable=None,
        dynamic_ncols=True,
    )
    with progress:
        while _await_other_workers(study, search, deadline, may_start=started[0] < budget):
            _queue_refinement(study, search)
            # one trial at a time: Optuna's own loop runs it with the heartbeat, fails it on an error (re-raised)
            study.optimize(objective, n_trials=1, n_jobs=1, gc_after_trial=True, catch=(SurplusTrialError,))
            finished = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
            progress.update(max(0, min(finished, search.n_trials) - progress.n))
    states = [t.state for t in study.get_trials(deepcopy=False)]
    if optuna.trial.TrialState.COMPLETE not in states and optuna.trial.TrialState.FAIL in states:
        raise SearchFailedError(
            f"search for backbone {backbone}: every trial failed ({states.count(optuna.trial.TrialState.FAIL)} of "
            f"{len(states)} in study {study.study_name}), so there is no tuned λ/margin; a NaN validation AUC "
            "(one class in the validation split) or a training error is the usual cause — see the log above"
        )
    return study


def plot_pareto_front(study: optuna.Study, max_violation: float | None = None) -> Figure:
    """Optuna's Pareto-front plot (AUC against wrong-step share), the chosen trial and the target marked.

    ``max_violation`` defaults to the one ``run_search`` stored on the study (a study user attribute).
    With no completed trial, a figure that says so.
    """
    if max_violation is None:
        max_violation = study.user_attrs.get("max_violation")
    trials = study.get_trials(deepcopy=False)
    chosen, feasible = select_trial(trials, max_violation, study.user_attrs.get("max_edge_violation"))
    if chosen is None:
        return message_figure("Pareto front: no completed trial yet")
    from optuna.visualization.matplotlib import plot_pareto_front as optuna_pareto

    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna_pareto(study, target_names=list(TARGET_NAMES), include_dominated_trials=True)
    auc, share = chosen.values[0], chosen.values[1]
    label = f"chosen: trial {chosen.number}" + ("" if feasible else " (misses the target)")
    ax.scatter([auc], [share], s=220, facecolors="none", edgecolors="black", linewidths=2, zorder=10, label=label)
    ax.annotate(f"trial {chosen.number}", (auc, share), xytext=(8, 8), textcoords="offset points", fontsize=9)
    if max_violation is not None:
        ax.axhline(
            max_violation, color="tab:red", linestyle="--", linewidth=1.2, label=f"target share <= {max_violation:g}"
        )
    ax.legend(loc="best", fontsize=8)
    fig = figure_of(ax)
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    return fig


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, val_auc, val_wrong_step_share, params, user attrs, duration (s)."""
    frame = study.trials_dataframe(attrs=("number", "value", "params", "state", "user_attrs", "duration"))
    frame = frame.rename(columns={"values_0": AUC_ATTR, "values_1": SHARE_ATTR})
    # the user-attribute copies of the two objectives repeat those columns
    frame = frame.drop(columns=[f"user_attrs_{AUC_ATTR}", f"user_attrs_{SHARE_ATTR}"], errors="ignore")
    if "duration" in frame.columns:
        frame["duration"] = frame["duration"].dt.total_seconds()
    return frame
