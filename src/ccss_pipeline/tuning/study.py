"""A backbone's two-objective study: its name, where it lives, and how its trials draw their points.

The name carries the backbone and a hash of everything the trials' results depend on (data, spec,
backbone, budget, loss, search space, measurement settings), so an interrupted search resumes with its
finished trials kept, raising ``n_trials`` or changing the selection target (``max_violation``) or the
pruner continues the same study, and a changed configuration starts a new study instead of mixing
incompatible trials.

Sampler: multivariate TPE after ``search.n_startup_trials`` random trials, re-seeded for every trial
from ``(search.seed, draw number)``, so a fresh search is reproducible, a resumed one continues with
new draws instead of repeating the points of its first run, and workers sharing a study never draw
from one common seed. A killed trial's queued copy does not count (:func:`draw_number`), so a search
killed mid-trial draws, once resumed, what an uninterrupted one draws.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import optuna

from ccss_pipeline.config import BackboneConfig, SearchConfig, TrainingConfig
from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.model.checkpoint import pairs_digest
from ccss_pipeline.model.methods import method_of
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.training_data import TrainingData, training_data
from ccss_pipeline.spec import FeatureSpec, ModelInputs
from ccss_pipeline.tuning.study_storage import SearchStorageError, open_storage, redact, safe_url
from ccss_pipeline.tuning.workers import fail_dead_trials

logger = logging.getLogger(__name__)

#: the two objectives, in Optuna's order
DIRECTIONS: tuple[Literal["maximize"], Literal["minimize"]] = ("maximize", "minimize")

# Fields of the search configuration that do not change what a trial computes: the budget, where the
# study is stored, the selection target, the pruner and the number of random start-up trials (which
# the configuration forces below n_trials, so raising n_trials may need it raised too).
_NOT_HASHED = {
    "n_trials",
    "timeout_s",
    "storage_path",
    "max_violation",
    "max_edge_violation",
    "auc_tolerance",
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


def backbone_config(training: TrainingConfig, backbone: str) -> BackboneConfig:
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
            backbone_config(training, backbone).model_dump(),
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
    train: ModelInputs | TrainingData,
    valid: ModelInputs | TrainingData,
    pairs: PairTable | None,
    stream_buffer_rows: int | None = None,
) -> str:
    """Content hash of what every trial trains and validates on (a streamed split: its files; its
    pairs are drawn per batch, so the buffer that shapes the batches stands in for the pair table)."""
    drawn = f"stream{stream_buffer_rows}" if training_data(train).streamed else ""
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


def seed_sampler_for(study: optuna.Study, search: SearchConfig, trial_number: int) -> None:
    """Give the trial its own sampler stream, seeded by ``(search.seed, draw number)`` (:func:`draw_number`).

    Workers sharing a study would otherwise start from the same seed and draw the same points; a
    resumed run continues with new numbers, so it never repeats its first run's draws; a run resumed
    after a kill mid-trial draws what the uninterrupted run would have drawn.
    """
    study.sampler = make_sampler(search, draw_number(study.get_trials(deepcopy=False), trial_number))


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
            sampler=make_sampler(search, 0),  # re-seeded per trial (``seed_sampler_for``)
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
