"""Monotonicity methods side by side under one protocol (issue 27): ``kedro run --pipelines=compare``.

The rows (``compare.methods``): ``baseline`` (the network of ``compare.backbone`` with λ = 0), the
trainer's three methods ``ccss``, ``pwl`` and ``hints`` (:mod:`ccss_pipeline.model.methods`) on that
network, and two models monotone by construction, ``monotone_net`` (a Lipschitz monotonic network,
:mod:`ccss_pipeline.model.monotone_net`) and ``gbdt`` (LightGBM with monotone constraints,
:mod:`ccss_pipeline.model.gbdt`).

The protocol, the same for every row:

1. **Tuning**, on validation only, with the same number of trials for every tuned row
   (``compare.n_trials``, default ``model_training.search.n_trials``): ``ccss``, ``pwl``, ``hints`` —
   :func:`~ccss_pipeline.model.search.run_search` over the method's own space, then
   :func:`~ccss_pipeline.model.selection.best_parameters` (the training's rule: best validation AUC
   whose validation wrong-step share and edge test meet their targets, else the closest trial);
   ``monotone_net`` — its learning rate and Lipschitz bound; ``gbdt`` — LightGBM's leaves, learning
   rate, minimum leaf size and L2 — both on validation AUC (monotone whatever their parameters, they
   have no target to meet). The baseline is not tuned: the configured optimizer, as every row's
   defaults. The studies are named ``<search.study_name>-compare…`` in ``compare.storage_path`` (or the
   shared ``search_storage`` database), so a rerun resumes them.
2. **Final fits**: ``compare.n_seeds`` seeds ``optimizer.seed + i`` per row (LightGBM's seed for
   ``gbdt``), seeds outermost so machine load spreads evenly over the rows; trials and network fits
   take the training's epoch budgets (``search.max_epochs``, ``optimizer.max_epochs``).
3. **Measurement on test**, with the evaluation's functions and settings: every fit's logit through the
   recalibration ``model_training.recalibration`` fitted on validation (a strictly increasing map, as
   the evaluation serves the trained models), then :func:`~ccss_pipeline.evaluation.accuracy.accuracy_metrics`
   and :func:`~ccss_pipeline.evaluation.raw_grid.raw_grid_report`. The edge test is n/a where a row has
   no bucket path for the directed features (``gbdt``, ``monotone_net``: they see the dense value only).
   Training seconds are relative to the unconstrained fit of the same family and seed: the λ = 0
   network for the network rows, LightGBM without constraints (same tuned settings) for ``gbdt``.
4. **Summary**: mean ± std over seeds per row, and ΔAUC against the baseline paired on the seed with
   its 95% Student-t interval (:mod:`ccss_pipeline.evaluation.seeds`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from ccss_pipeline.config import CompareConfig, EvaluationConfig, SearchConfig, TrainingConfig
from ccss_pipeline.evaluation.accuracy import accuracy_metrics
from ccss_pipeline.evaluation.comparison_reading import BASELINE, CCSS, ComparisonResult, delta_auc, records
from ccss_pipeline.evaluation.raw_grid import raw_grid_report
from ccss_pipeline.evaluation.seeds import summarize_over_seeds
from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.distributed import Fit, FitData, run_fits
from ccss_pipeline.model.methods import method_of
from ccss_pipeline.model.persistence import model_key
from ccss_pipeline.model.scoring import logit_fn
from ccss_pipeline.model.study_storage import open_storage
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.tuning import completed
from ccss_pipeline.spec import FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)

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

ACCURACY = ("auc", "accuracy", "logloss")
GRID = (
    "wrong_step_share",
    "max_feature_wrong_step_share",
    "wrong_step_share_inside",
    "wrong_step_share_crossing",
    "edge_wrong_share",
    "monotone_row_share",
)
TIMES = ("train_seconds", "time_ratio")
METRICS = (*ACCURACY, *GRID, *TIMES)
#: the per-seed frame: one row per method and seed
SEED_COLUMNS = [
    "method", "family", "seed", "n_trials", *ACCURACY, *GRID, "worst_feature",
    "train_seconds", "reference_seconds", "time_ratio",
]  # fmt: skip
#: the summary: one row per method
SUMMARY_KEYS = ["method", "label", "family", "tuned", "by_construction", "edge_test", "study", "n_trials", "n_seeds"]
DELTA_COLUMNS = ["delta_auc", "delta_auc_std", "delta_auc_ci_low", "delta_auc_ci_high", "delta_auc_n"]


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
class _Run:
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


def _tune(method: str, run: _Run) -> Tuned:
    if method == BASELINE:
        return Tuned(None, 0)
    if method in SOFT:
        return _tune_soft(method, run)
    if method == "monotone_net":
        return _tune_monotone_net(run)
    if method == "gbdt":
        return _tune_gbdt(run)
    raise ValueError(f"unknown method {method!r}; allowed: {list(ROWS)}")


def _method_training(run: _Run, method: str) -> TrainingConfig:
    return run.training.model_copy(update={"method": method})


def _tune_soft(method: str, run: _Run) -> Tuned:
    from ccss_pipeline.model.search import FINISHED, run_search
    from ccss_pipeline.model.selection import best_parameters

    data, training = run.data, _method_training(run, method)
    study = run_search(
        data.spec,
        data.train,
        data.valid,
        data.pairs if method == CCSS else None,
        training,
        run.backbone,
        storage_root=run.storage_root,
        database_url=run.database_url,
        shapley_p=data.shapley_p,
        move=data.move,
    )
    finished = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    return Tuned(study.study_name, finished, best_parameters(study, training, data.spec.fingerprint))


def _study_name(run: _Run, method: str, settings: list[Any]) -> str:
    """``<search.study_name>-compare-<method>-<backbone>-<hash>``: the hash covers the data, the
    spec and what the trials compute, so a changed configuration starts a new study."""
    data, search = run.data, run.training.search
    payload = content_hash(
        [data.spec.to_dict(), data.train.digest(), data.valid.digest(), search.seed, *settings], length=10
    )
    return f"{search.study_name}-{method}-{run.backbone}-{payload}"


def _storage(run: _Run) -> Any:
    return open_storage(run.storage_root, run.training.search, run.database_url)


def _monotone_net_base(run: _Run) -> Any:
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


def _tune_monotone_net(run: _Run) -> Tuned:
    from ccss_pipeline.model.monotone_net import tune_monotone_net

    base, search, compare = _monotone_net_base(run), run.training.search, run.compare
    learning_rate, lipschitz = compare.monotone_net_learning_rate, compare.monotone_net_lipschitz
    name = _study_name(
        run, "monotone_net", [base.model_dump(mode="json"), learning_rate.model_dump(), lipschitz.model_dump()]
    )
    result = tune_monotone_net(
        run.data.spec,
        run.data.train,
        run.data.valid,
        search.n_trials,
        base,
        learning_rate,
        lipschitz,
        n_startup_trials=search.n_startup_trials,
        storage=_storage(run),
        study_name=name,
        device=resolve_device(run.training.optimizer.device),
    )
    return Tuned(name, completed(result.study), result.config)


def _tune_gbdt(run: _Run) -> Tuned:
    from ccss_pipeline.model.gbdt import GBDTConfig, GBDTSearchSpace, tune_gbdt

    base, space, search = GBDTConfig(seed=run.training.optimizer.seed), GBDTSearchSpace(), run.training.search
    name = _study_name(run, "gbdt", [base.model_dump(), space.model_dump()])
    result = tune_gbdt(
        run.data.spec,
        run.data.train,
        run.data.valid,
        search.n_trials,
        base,
        space,
        n_startup_trials=search.n_startup_trials,
        storage=_storage(run),
        study_name=name,
    )
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


def _fit(method: str, tuned: Tuned, seed: int, run: _Run) -> Fitted:
    if method == BASELINE or method in SOFT:
        return _fit_network(method, tuned.settings, seed, run)
    if method == "monotone_net":
        return _fit_monotone_net(tuned.settings, seed, run)
    return _fit_gbdt(tuned.settings, seed, run)


def _fit_network(method: str, chosen: ChosenParams | None, seed: int, run: _Run) -> Fitted:
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


def _fit_monotone_net(config: Any, seed: int, run: _Run) -> Fitted:
    from ccss_pipeline.model.monotone_net import fit_monotone_net

    final = config.model_copy(update={"seed": seed, "max_epochs": run.training.optimizer.max_epochs})
    device = resolve_device(run.training.optimizer.device)
    fit, seconds = _timed(lambda: fit_monotone_net(run.data.spec, run.data.train, run.data.valid, final, device))
    return Fitted(logit_fn(cast(Any, fit.model), resolve_device(run.evaluation.device)), seconds)


def _fit_gbdt(config: Any, seed: int, run: _Run) -> Fitted:
    from ccss_pipeline.model.gbdt import fit_gbdt

    data, final = run.data, config.model_copy(update={"seed": seed})
    model, seconds = _timed(lambda: fit_gbdt(data.spec, data.train, data.valid, final))
    _, reference = _timed(
        lambda: fit_gbdt(data.spec, data.train, data.valid, final.model_copy(update={"monotone": False}))
    )
    return Fitted(model.predict_logit, seconds, reference)


# =========================================================================================== measurement


def measure(fitted: Fitted, data: CompareData, evaluation: EvaluationConfig, recalibration: str) -> dict[str, Any]:
    """Test-split figures of one fit, as the evaluation measures a trained model: its logit through the
    ``recalibration`` fitted on validation, then accuracy (AUC, accuracy at ``evaluation.threshold``,
    LogLoss) and the raw-grid sweep with the evaluation's settings."""
    valid, test = data.valid, data.test
    recal = Recalibration.fit(fitted.logit(valid.cat, valid.dense, valid.bucket), valid.label, recalibration)

    def prob(cat: np.ndarray, dense: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        return recal.probability(fitted.logit(cat, dense, bucket))

    accuracy = accuracy_metrics(
        test.label, prob(test.cat, test.dense, test.bucket), test.group, threshold=evaluation.threshold
    )
    grid = raw_grid_report(
        prob,
        test,
        data.spec,
        levels=evaluation.grid_levels,
        rows=evaluation.grid_rows,
        seed=evaluation.seed,
        eps=evaluation.eps,
    )
    shares = grid.per_feature.set_index("feature")["wrong_step_share"].dropna()
    worst = str(shares.idxmax()) if len(shares) and shares.max() > 0 else ""
    return {**{k: accuracy[k] for k in ACCURACY}, **{k: grid.pooled[k] for k in GRID}, "worst_feature": worst}


def _seed_row(method: str, seed: int, tuned: Tuned, fitted: Fitted, figures: dict[str, Any]) -> dict[str, Any]:
    row = ROWS[method]
    if not row.bucket_path:
        figures = {**figures, "edge_wrong_share": math.nan}  # no bucket path: nothing for the edge test to isolate
    return {
        "method": method,
        "family": row.family,
        "seed": seed,
        "n_trials": tuned.n_trials,
        **figures,
        "train_seconds": fitted.seconds,
        "reference_seconds": fitted.reference_seconds,
    }


def _time_ratios(seeds: pd.DataFrame) -> pd.DataFrame:
    """Training seconds over the same family's unconstrained fit of the same seed: the baseline's for
    the networks, the recorded unconstrained LightGBM fit for ``gbdt``."""
    baseline = seeds[seeds["method"] == BASELINE].set_index("seed")["train_seconds"]
    network = seeds["reference_seconds"].isna() & (seeds["family"] == "network")
    reference = seeds["reference_seconds"].where(~network, seeds["seed"].map(baseline))
    seeds = seeds.assign(reference_seconds=reference.astype(float))
    return seeds.assign(time_ratio=seeds["train_seconds"] / seeds["reference_seconds"])


# =============================================================================================== summary


def summarize(seeds: pd.DataFrame, tuned: Mapping[str, Tuned]) -> pd.DataFrame:
    """One row per method (in ``tuned``'s order): mean ± std of every figure over seeds, the paired
    ΔAUC against the baseline, and what the row is (family, tuning, construction, edge test)."""
    stats = {r["method"]: r for r in records(summarize_over_seeds(seeds, ["method"], list(METRICS)))}
    rows = []
    for method, t in tuned.items():
        row, worst = ROWS[method], seeds.loc[seeds["method"] == method, "worst_feature"]
        named = Counter(w for w in worst if isinstance(w, str) and w)
        rows.append(
            {
                "method": method,
                "label": row.label,
                "family": row.family,
                "tuned": row.tuned,
                "by_construction": row.by_construction,
                "edge_test": row.bucket_path,
                "study": t.study or "",
                "n_trials": t.n_trials,
                **{k: v for k, v in stats[method].items() if k != "method"},
                "worst_feature": named.most_common(1)[0][0] if named else "",
                **delta_auc(seeds, method),
            }
        )
    metric_columns = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    return pd.DataFrame(rows, columns=[*SUMMARY_KEYS, *metric_columns, "worst_feature", *DELTA_COLUMNS])


# ================================================================================================ result


def compare_methods(
    data: CompareData,
    training: TrainingConfig,
    evaluation: EvaluationConfig,
    compare: CompareConfig,
    storage_root: Path,
    database_url: str | None = None,
) -> ComparisonResult:
    """Tune every row of ``compare.methods``, fit it over ``compare.n_seeds`` seeds and measure it on
    test (module docstring); the studies resume from ``storage_root / compare.storage_path`` (or
    ``database_url``)."""
    if CCSS in compare.methods and data.pairs is None and not training.redraw_pairs_each_epoch:
        raise ValueError("the `ccss` row trains on the counterfactual pair table: CompareData.pairs is None")
    run = _Run(data, comparison_training(training, compare), evaluation, compare, Path(storage_root), database_url)
    tuned: dict[str, Tuned] = {}
    for method in compare.methods:
        logger.info("compare: tuning %s (%d trials)", method, run.training.search.n_trials if ROWS[method].tuned else 0)
        tuned[method] = _tune(method, run)
    rows = []
    for seed in run.seeds():  # seeds outermost: machine load falls on every row alike
        for method in compare.methods:
            fitted = _fit(method, tuned[method], seed, run)
            figures = measure(fitted, data, evaluation, training.recalibration)
            logger.info(
                "compare: %s seed %d: test AUC %.5f, wrong steps %.4f",
                method,
                seed,
                figures["auc"],
                figures["wrong_step_share"],
            )
            rows.append(_seed_row(method, seed, tuned[method], fitted, figures))
    seeds = _time_ratios(pd.DataFrame(rows))[SEED_COLUMNS]
    return ComparisonResult(
        seeds, summarize(seeds, tuned), compare.backbone, run.training.search.n_trials, compare.n_seeds
    )
