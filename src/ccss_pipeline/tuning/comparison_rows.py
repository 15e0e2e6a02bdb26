"""The rows of the methods' comparison (:mod:`ccss_pipeline.tuning.comparison`): what each row is, how it
is tuned on validation (step 1 of the protocol) and fitted for a seed (step 2).

``ccss``, ``pwl``, ``hints``: :func:`~ccss_pipeline.tuning.search.run_search` over the method's own
space, then :func:`~ccss_pipeline.tuning.selection.best_parameters`, and the training's final fit;
``monotone_net`` and ``gbdt``: their own single-objective studies (:mod:`ccss_pipeline.model.peer_tuning`);
the baseline: the configured network with λ = 0, not tuned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from ccss_pipeline.config import CompareConfig, EvaluationConfig, SearchConfig, TrainingConfig
from ccss_pipeline.evaluation.comparison_reading import BASELINE, CCSS
from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.distributed import Fit, FitData, run_fits
from ccss_pipeline.model.methods import method_of
from ccss_pipeline.model.peer_tuning import StudyPlan, completed
from ccss_pipeline.model.persistence import model_key
from ccss_pipeline.model.scoring import logit_fn
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.spec import FeatureSpec, ModelInputs
from ccss_pipeline.tuning.study_storage import open_storage

#: A fit's raw logit on encoded inputs: ``(cat, dense, bucket) -> logit`` (float64).
Logit = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
SOFT = ("ccss", "pwl", "hints")
#: the comparison's studies are ``<search.study_name>-compare…``
STUDY_TAG = "compare"


@dataclass(frozen=True)
class Row:
    """What the table must know about a method: its family (what its training time is relative to),
    whether it is tuned, whether it is monotone by construction, and whether it reaches a directed
    feature through its bucket id (the edge test applies only then)."""

    label: str
    family: Literal["network", "gbdt"]
    tuned: bool
    by_construction: bool
    bucket_path: bool


ROWS: dict[str, Row] = {
    "baseline": Row("baseline, λ = 0", "network", False, False, True),
    "ccss": Row("CCSS", "network", True, False, True),
    "pwl": Row("point-wise gradient penalty", "network", True, False, True),
    "hints": Row("monotonicity hints", "network", True, False, True),
    "monotone_net": Row("Lipschitz monotonic network", "network", True, True, False),
    "gbdt": Row("LightGBM, monotone constraints", "gbdt", True, True, False),
}


# ================================================================================================ inputs


@dataclass(frozen=True)
class CompareData:
    """The splits in memory, and what CCSS's fits draw their pairs from (its fixed table, or
    ``shapley_p`` with ``move``)."""

    spec: FeatureSpec
    train: ModelInputs
    valid: ModelInputs
    test: ModelInputs
    pairs: PairTable | None
    shapley_p: np.ndarray
    move: str = "centre"


@dataclass(frozen=True)
class ComparisonRun:
    """One comparison: the data, the training settings with the comparison's search, the evaluation's
    measurement settings, and where the studies live."""

    data: CompareData
    training: TrainingConfig
    evaluation: EvaluationConfig
    compare: CompareConfig
    storage_root: Path
    database_url: str | None

    @property
    def backbone(self) -> str:
        return self.compare.backbone

    def seeds(self) -> list[int]:
        return [self.training.optimizer.seed + i for i in range(self.compare.n_seeds)]


def comparison_training(training: TrainingConfig, compare: CompareConfig) -> TrainingConfig:
    """``model_training`` with the comparison's search: its trial budget, its study names
    (``<study_name>-compare``) and its study file; one backbone."""
    search = training.search
    n_trials = search.n_trials if compare.n_trials is None else compare.n_trials
    startup = search.n_startup_trials if n_trials <= 1 else min(search.n_startup_trials, n_trials - 1)
    update = {
        "n_trials": n_trials,
        "n_startup_trials": startup,
        "study_name": f"{search.study_name}-{STUDY_TAG}",
        "storage_path": compare.storage_path,
    }
    searched = SearchConfig.model_validate({**search.model_dump(), **update})
    return training.model_copy(update={"search": searched, "backbones": [compare.backbone]})


# ================================================================================================ tuning


@dataclass(frozen=True)
class Tuned:
    """A row's tuning: its study (None: not tuned), the trials that ran, and the chosen settings."""

    study: str | None
    n_trials: int
    settings: Any = None


def tune_row(method: str, run: ComparisonRun) -> Tuned:
    """Step 1 for one row: its study on validation (none for the baseline) and the settings it chose."""
    if method == BASELINE:
        return Tuned(None, 0)
    if method in SOFT:
        return _tune_soft(method, run)
    if method == "monotone_net":
        return _tune_monotone_net(run)
    if method == "gbdt":
        return _tune_gbdt(run)
    raise ValueError(f"unknown method {method!r}; allowed: {list(ROWS)}")


def _method_training(run: ComparisonRun, method: str) -> TrainingConfig:
    return run.training.model_copy(update={"method": method})


def _tune_soft(method: str, run: ComparisonRun) -> Tuned:
    from ccss_pipeline.tuning.search import SearchData, run_search
    from ccss_pipeline.tuning.selection import best_parameters
    from ccss_pipeline.tuning.workers import FINISHED

    data, training = run.data, _method_training(run, method)
    study = run_search(
        SearchData(
            data.spec, data.train, data.valid, data.pairs if method == CCSS else None, data.shapley_p, data.move
        ),
        training,
        run.backbone,
        storage_root=run.storage_root,
        database_url=run.database_url,
    )
    finished = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    return Tuned(study.study_name, finished, best_parameters(study, training, data.spec.fingerprint))


def _study_name(run: ComparisonRun, method: str, settings: list[Any]) -> str:
    """``<search.study_name>-compare-<method>-<backbone>-<hash>``: the hash covers the data, the
    spec and what the trials compute, so a changed configuration starts a new study."""
    data, search = run.data, run.training.search
    payload = content_hash(
        [data.spec.to_dict(), data.train.digest(), data.valid.digest(), search.seed, *settings], length=10
    )
    return f"{search.study_name}-{method}-{run.backbone}-{payload}"


def _study_plan(run: ComparisonRun, name: str) -> StudyPlan:
    """A peer's study: the search's trial budget and random start-up, under ``name`` in the comparison's storage."""
    search = run.training.search
    storage = open_storage(run.storage_root, search, run.database_url)
    return StudyPlan(search.n_trials, search.n_startup_trials, storage, name)


def _monotone_net_base(run: ComparisonRun) -> Any:
    """The Lipschitz network with the backbone's embedding and widths (rounded up to even: GroupSort
    sorts pairs), the optimizer's batch and patience, and the search's per-trial epoch budget."""
    from ccss_pipeline.model.monotone_net import MonotoneNetConfig

    backbone, optimizer = run.training.backbone, run.training.optimizer
    return MonotoneNetConfig(
        embedding_dim=backbone.embedding_dim,
        embedding_init_std=backbone.embedding_init_std,
        hidden_units=tuple(h + h % 2 for h in backbone.hidden_units),
        learning_rate=optimizer.learning_rate,
        batch_size=optimizer.batch_size_for(len(run.data.train)),
        max_epochs=run.training.search.max_epochs,
        patience=optimizer.patience,
        seed=optimizer.seed,
    )


def _tune_monotone_net(run: ComparisonRun) -> Tuned:
    from ccss_pipeline.model.monotone_net import MonotoneNetSearchSpace, tune_monotone_net

    base, compare = _monotone_net_base(run), run.compare
    space = MonotoneNetSearchSpace(
        learning_rate=compare.monotone_net_learning_rate, lipschitz=compare.monotone_net_lipschitz
    )
    name = _study_name(
        run,
        "monotone_net",
        [base.model_dump(mode="json"), space.learning_rate.model_dump(), space.lipschitz.model_dump()],
    )
    device = resolve_device(run.training.optimizer.device)
    result = tune_monotone_net(
        run.data.spec, run.data.train, run.data.valid, _study_plan(run, name), base, space, device
    )
    return Tuned(name, completed(result.study), result.config)


def _tune_gbdt(run: ComparisonRun) -> Tuned:
    from ccss_pipeline.model.gbdt import GBDTConfig, GBDTSearchSpace, tune_gbdt

    base, space = GBDTConfig(seed=run.training.optimizer.seed), GBDTSearchSpace()
    name = _study_name(run, "gbdt", [base.model_dump(), space.model_dump()])
    result = tune_gbdt(run.data.spec, run.data.train, run.data.valid, _study_plan(run, name), base, space)
    return Tuned(name, completed(result.study), result.config)


# ============================================================================================ final fits


@dataclass(frozen=True)
class Fitted:
    """One final fit: its raw logit and training seconds (``reference_seconds``: the unconstrained
    LightGBM of the same settings and seed, for ``gbdt``)."""

    logit: Logit
    seconds: float
    reference_seconds: float | None = None


def _timed(fit: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fit()
    return out, time.perf_counter() - start


def fit_row(method: str, tuned: Tuned, seed: int, run: ComparisonRun) -> Fitted:
    """Step 2 for one row and seed: its final fit with the settings its tuning chose."""
    if method == BASELINE or method in SOFT:
        return _fit_network(method, tuned.settings, seed, run)
    if method == "monotone_net":
        return _fit_monotone_net(tuned.settings, seed, run)
    return _fit_gbdt(tuned.settings, seed, run)


def _fit_network(method: str, chosen: ChosenParams | None, seed: int, run: ComparisonRun) -> Fitted:
    """The training's final fit (:func:`ccss_pipeline.model.distributed.run_fits`, one process, no
    checkpoint): λ = 0 for the baseline, else the chosen parameters and the method's term."""
    from ccss_pipeline.config import BackboneConfig, DistributedConfig

    training, data = run.training, run.data
    backbone = BackboneConfig.model_validate({**training.backbone.model_dump(), "name": run.backbone})
    if chosen is None:
        term, contrastive, learning_rate = None, training.contrastive.model_copy(update={"weight": 0.0}), None
    else:
        term = method_of(_method_training(run, method), chosen.method_params)
        contrastive, learning_rate = training.contrastive.model_copy(update=chosen.tuned()), chosen.learning_rate
    optimizer = training.optimizer.model_copy(
        update={"seed": seed, "learning_rate": learning_rate or training.optimizer.learning_rate}
    )
    fit = Fit(
        model_key(run.backbone, method, seed),
        backbone,
        contrastive,
        optimizer,
        with_pairs=term is not None and term.uses_pairs,
        redraw_pairs_each_epoch=training.redraw_pairs_each_epoch,
        method=term,
    )
    fit_data = FitData(
        data.spec, data.train, data.valid, data.pairs, data.shapley_p, data.move, training.streaming.buffer_rows
    )
    results, seconds = _timed(lambda: run_fits([fit], fit_data, DistributedConfig()))
    return Fitted(logit_fn(results[fit.key].model, resolve_device(run.evaluation.device)), seconds)


def _fit_monotone_net(config: Any, seed: int, run: ComparisonRun) -> Fitted:
    from ccss_pipeline.model.monotone_net import fit_monotone_net

    final = config.model_copy(update={"seed": seed, "max_epochs": run.training.optimizer.max_epochs})
    device = resolve_device(run.training.optimizer.device)
    fit, seconds = _timed(lambda: fit_monotone_net(run.data.spec, run.data.train, run.data.valid, final, device))
    return Fitted(logit_fn(cast(Any, fit.model), resolve_device(run.evaluation.device)), seconds)


def _fit_gbdt(config: Any, seed: int, run: ComparisonRun) -> Fitted:
    from ccss_pipeline.model.gbdt import fit_gbdt

    data, final = run.data, config.model_copy(update={"seed": seed})
    model, seconds = _timed(lambda: fit_gbdt(data.spec, data.train, data.valid, final))
    _, reference = _timed(
        lambda: fit_gbdt(data.spec, data.train, data.valid, final.model_copy(update={"monotone": False}))
    )
    return Fitted(model.predict_logit, seconds, reference)
