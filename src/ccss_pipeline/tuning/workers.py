"""Several search workers on one study: who runs which trial, and what happens to a dead worker's trial.

Every access to Optuna's private API lives here (``Study._storage``, ``Trial._trial_id`` — the
storage's own heartbeat and retry machinery works on them, and Optuna offers no public way to fail
another process's trial). A worker records itself on each trial it runs (user attribute ``worker``,
``host:pid``); a RUNNING trial whose process is gone, whose heartbeat is silent for
``search.stale_after_s`` or that no worker ever claimed is failed and queued again with its parameters
(:func:`fail_dead_trials`), so a killed worker loses no trial. Workers that ask for trials at the same
instant may overshoot ``n_trials``: the surplus trial is failed unrun (:func:`check_not_surplus`), and a
worker with nothing to start waits while the others' trials run (:func:`await_other_workers`), since one
of them may die and be queued again.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import warnings

import optuna

from ccss_pipeline.config import SearchConfig

#: user attribute of a trial: host:pid of the process running it
WORKER_ATTR = "worker"
#: the states of a trial whose result is in (a pruned trial counts towards the budget)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
#: the states of a trial that is not failed: finished, running, or queued to run
COUNTED = (*FINISHED, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


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


def retried(trial: optuna.trial.Trial) -> bool:
    """Whether the trial is a queued copy of a failed one (``RetryHeartbeatStaleTrialCallback``'s system attribute)."""
    return trial.storage.get_trial(trial._trial_id).system_attrs.get("failed_trial") is not None


def check_not_surplus(study: optuna.Study, trial: optuna.trial.Trial, n_trials: int) -> None:
    """Raise ``SurplusTrialError`` when ``n_trials`` trials that are not failed precede this one (two
    workers asked at the same instant): the study ends with exactly ``n_trials`` finished trials."""
    before = [t for t in study.get_trials(deepcopy=False, states=COUNTED) if t.number < trial.number]
    if len(before) >= n_trials:
        trial.set_user_attr("surplus", True)
        raise SurplusTrialError(
            f"trial {trial.number}: the study already has {len(before)} trial(s) for "
            f"n_trials={n_trials} (another worker asked at the same time); not run"
        )


def await_other_workers(study: optuna.Study, search: SearchConfig, deadline: float | None, may_start: bool) -> bool:
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
