"""A single-objective Optuna study that resumes: the tuning loop of the comparison's peers, the models
monotone by construction (named apart from :mod:`ccss_pipeline.tuning`, the CCSS search).

:func:`ccss_pipeline.model.gbdt.tune_gbdt` and :func:`ccss_pipeline.model.monotone_net.tune_monotone_net`
maximise the validation AUC of one fit per trial. :func:`run_trials` creates the study — in memory, or
under ``study_name`` in an Optuna storage, where a later call with the same name continues it — and runs
the trials it still lacks: COMPLETE trials count, a failed one (an error, a killed run) is run again, so
a study ends with ``n_trials`` completed trials however often it was interrupted.

Sampler: multivariate TPE after ``n_startup_trials`` random trials. A fresh study's sampler is seeded
by ``seed``; a resumed one's by ``(seed, trials already in the study)``, so it draws new points instead
of repeating the random start-up points of the first run. Two-objective studies (the soft methods'
search) are :mod:`ccss_pipeline.tuning.search`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna


def completed(study: optuna.Study) -> int:
    """The study's COMPLETE trials: what counts towards its budget."""
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _sampler(seed: int, n_startup_trials: int, n_trials: int, already: int) -> optuna.samplers.TPESampler:
    resumed_seed = seed if already == 0 else int(np.random.SeedSequence([seed, already]).generate_state(1)[0])
    return optuna.samplers.TPESampler(
        seed=resumed_seed, n_startup_trials=max(1, min(n_startup_trials, n_trials)), multivariate=True
    )


def run_trials(
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    seed: int,
    n_startup_trials: int = 3,
    study_name: str = "study",
    storage: optuna.storages.BaseStorage | str | None = None,
) -> optuna.Study:
    """Create or resume the maximising study ``study_name`` (in memory without ``storage``) and run
    ``objective`` until it holds ``n_trials`` COMPLETE trials; returns the study."""
    if n_trials < 0:
        raise ValueError(f"n_trials must be >= 0, got {n_trials}")
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        sampler=_sampler(seed, n_startup_trials, n_trials, 0),
        load_if_exists=storage is not None,
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {study_name} exists and does not maximise: it is not a tuning study")
    already = len(study.get_trials(deepcopy=False))
    study.sampler = _sampler(seed, n_startup_trials, n_trials, already)
    remaining = n_trials - completed(study)
    if remaining > 0:  # an error in a trial is raised (it fails that trial; the next call runs it again)
        study.optimize(objective, n_trials=remaining)
    return study


@dataclass(frozen=True)
class StudyPlan:
    """What a peer's study must hold and where it lives: ``n_trials`` COMPLETE trials, the first
    ``n_startup_trials`` random draws; in memory without ``storage``, else under ``study_name`` there,
    where a later run of the same plan resumes it. ``study_name`` None: the peer's own name."""

    n_trials: int
    n_startup_trials: int = 3
    storage: optuna.storages.BaseStorage | str | None = None
    study_name: str | None = None

    def name_or(self, default: str) -> str:
        """The study's name: ``study_name``, else the peer's ``default``."""
        return default if self.study_name is None else self.study_name

    def run(self, objective: Callable[[optuna.Trial], float], seed: int, default_name: str) -> optuna.Study:
        """:func:`run_trials` of this plan (the study named :meth:`name_or` ``default_name``)."""
        return run_trials(
            objective, self.n_trials, seed, self.n_startup_trials, self.name_or(default_name), self.storage
        )
