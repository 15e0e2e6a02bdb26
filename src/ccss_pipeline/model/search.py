"""The Optuna search over the contrastive weight λ, the margin m (and τ where the loss has one).

Objective: validation AUC of a CCSS fit; the validation neighbour-violation rate of each trial is
recorded and, with ``max_violation``, used as a constraint (``Trial.set_constraint``, read by TPE). The study
lives in SQLite, and its name carries a hash of everything the trials depend on, so an interrupted
search resumes with its finished trials kept, while a changed configuration starts a new study
instead of mixing incompatible trials.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from ccss_pipeline.config import ContrastiveConfig, SearchConfig, TrainingConfig
from ccss_pipeline.evaluation.monotonicity import monotonicity_report
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.trainer import _pairs_digest, score_fn, train_model
from ccss_pipeline.spec import FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)

VIOLATION_ATTR = "val_violation_rate"
CONSTRAINT_ATTR = "constraint"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def study_name(training: TrainingConfig, spec: FeatureSpec, data_digest: str) -> str:
    """``<name>-<hash>``: the hash covers the data (spec and content), backbone, budget, loss and search space."""
    payload = json.dumps(
        [
            spec.to_dict(),
            data_digest,
            training.backbones[0],
            training.backbone.model_dump(),
            training.optimizer.model_dump(),
            training.contrastive.model_dump(exclude={"weight", "margin", "temperature"}),
            training.search.model_dump(exclude={"n_trials", "timeout_s", "storage_path"}),
        ],
        sort_keys=True,
        default=str,
    )
    return f"{training.search.study_name}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def search_digest(train: ModelInputs, valid: ModelInputs, pairs: PairTable) -> str:
    """Content hash of what every trial trains and validates on."""
    return "-".join([train.digest(), valid.digest(), _pairs_digest(pairs) or ""])


def suggest_contrastive(trial: optuna.trial.BaseTrial, base: ContrastiveConfig, search: SearchConfig) -> ContrastiveConfig:
    """λ and m always; τ only for the losses that have one (infonce, bpr)."""
    update: dict[str, Any] = {
        "weight": trial.suggest_float("weight", search.weight.low, search.weight.high, log=search.weight.log),
        "margin": trial.suggest_float("margin", search.margin.low, search.margin.high, log=search.margin.log),
    }
    if base.loss in ("infonce", "bpr"):
        t = search.temperature
        update["temperature"] = trial.suggest_float("temperature", t.low, t.high, log=t.log)
    return base.model_copy(update=update)


def validation_violation_rate(model: Any, valid: ModelInputs, spec: FeatureSpec, rows: int, seed: int = 0) -> float:
    """Pooled neighbour violation rate on a seeded validation subsample (spec §6)."""
    result = monotonicity_report(score_fn(model), valid, spec, max_rows=rows, seed=seed)
    return float(result.pooled["violation_rate"])


def _fail_stale_trials(study: optuna.Study) -> int:
    """Trials left RUNNING by a killed process can never finish: mark them FAIL so they are not counted."""
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
    return len(stale)


def open_study(training: TrainingConfig, spec: FeatureSpec, data_digest: str, storage_root: Path | None = None) -> optuna.Study:
    """Create or resume the study in SQLite (``load_if_exists``), seeded TPE, median pruner."""
    search = training.search
    path = (storage_root or Path.cwd()) / search.storage_path
    path.parent.mkdir(parents=True, exist_ok=True)
    sampler = optuna.samplers.TPESampler(seed=search.seed)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=search.pruner.n_startup_trials, n_warmup_steps=search.pruner.n_warmup_steps)
        if search.pruner.enabled
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=study_name(training, spec, data_digest),
        storage=f"sqlite:///{path}",
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    stale = _fail_stale_trials(study)
    if stale:
        logger.warning("marked %d trial(s) left running by an interrupted search as failed", stale)
    return study


def run_search(
    spec: FeatureSpec,
    train: ModelInputs,
    valid: ModelInputs,
    pairs: PairTable,
    training: TrainingConfig,
    storage_root: Path | None = None,
) -> optuna.Study:
    """Run the trials still missing (finished ones of an earlier, interrupted run count)."""
    search = training.search
    study = open_study(training, spec, search_digest(train, valid, pairs), storage_root)
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    remaining = max(0, search.n_trials - done)
    logger.info("study %s: %d finished trial(s), running %d more", study.study_name, done, remaining)
    backbone = training.backbone.model_copy(update={"name": training.backbones[0]})

    def objective(trial: optuna.trial.Trial) -> float:
        contrastive = suggest_contrastive(trial, training.contrastive, search)
        update: dict[str, Any] = {"max_epochs": search.max_epochs}
        if search.learning_rate is not None:
            lr = search.learning_rate
            update["learning_rate"] = trial.suggest_float("learning_rate", lr.low, lr.high, log=lr.log)
        optimizer = training.optimizer.model_copy(update=update)

        def report(epoch: int, val_auc: float) -> None:
            trial.report(val_auc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (val AUC {val_auc:.4f})")

        result = train_model(spec, train, valid, backbone, contrastive, optimizer, pairs=pairs, on_epoch=report)
        violation = validation_violation_rate(result.model, valid, spec, search.violation_rows, seed=search.seed)
        trial.set_user_attr(VIOLATION_ATTR, violation)
        trial.set_user_attr("best_epoch", result.best_epoch)
        if search.max_violation is not None:
            trial.set_user_attr(CONSTRAINT_ATTR, violation - search.max_violation)
            trial.set_constraint("max_violation", violation - search.max_violation)  # TPE avoids infeasible regions
        logger.info("trial %d: val AUC %.5f, violation rate %.4f, %s", trial.number, result.best_val_auc, violation, trial.params)
        return result.best_val_auc

    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=search.timeout_s, n_jobs=1, gc_after_trial=True)
    return study


def best_parameters(study: optuna.Study, training: TrainingConfig) -> dict[str, Any]:
    """Best feasible trial's parameters; with no finished trial, the configured defaults."""
    base = training.contrastive
    completed = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = [t for t in completed if float(t.user_attrs.get(CONSTRAINT_ATTR, 0.0)) <= 0.0]
    pool = feasible or completed
    out: dict[str, Any] = {"loss": base.loss, "study": study.study_name, "n_trials": len(study.trials)}
    if not pool:
        out.update({"weight": base.weight, "margin": base.margin, "temperature": base.temperature, "source": "defaults"})
        out["learning_rate"] = training.optimizer.learning_rate
        return out
    best = max(pool, key=lambda t: (t.value if t.value is not None else -np.inf, -t.number))
    out.update(
        {
            "weight": best.params["weight"],
            "margin": best.params["margin"],
            "temperature": best.params.get("temperature", base.temperature),
            "learning_rate": best.params.get("learning_rate", training.optimizer.learning_rate),
            "source": f"trial {best.number}",
            "val_auc": best.value,
            "val_violation_rate": best.user_attrs.get(VIOLATION_ATTR),
            "feasible": bool(feasible),
        }
    )
    return out


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, params, violation rate, duration."""
    frame = study.trials_dataframe(attrs=("number", "value", "params", "state", "user_attrs", "duration"))
    if "duration" in frame.columns:
        frame["duration"] = frame["duration"].dt.total_seconds()
    return frame
