"""Monotonicity methods side by side under one protocol (issue 27): ``kedro run --pipelines=compare``.

The rows (``compare.methods``): ``baseline`` (the network of ``compare.backbone`` with λ = 0), the
trainer's three methods ``ccss``, ``pwl`` and ``hints`` (:mod:`ccss_pipeline.model.methods`) on that
network, and two models monotone by construction, ``monotone_net`` (a Lipschitz monotonic network,
:mod:`ccss_pipeline.model.monotone_net`) and ``gbdt`` (LightGBM with monotone constraints,
:mod:`ccss_pipeline.model.gbdt`).

The protocol, the same for every row:

1. **Tuning**, on validation only, with the same number of trials for every tuned row
   (``compare.n_trials``, default ``model_training.search.n_trials``): ``ccss``, ``pwl``, ``hints`` —
   :func:`~ccss_pipeline.tuning.search.run_search` over the method's own space, then
   :func:`~ccss_pipeline.tuning.selection.best_parameters` (the training's rule: best validation AUC
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

How each row is tuned and fitted (steps 1 and 2): :mod:`ccss_pipeline.tuning.comparison_rows`. It
lives with the search, above the model and the evaluation, because it runs both.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.config import CompareConfig, EvaluationConfig, TrainingConfig
from ccss_pipeline.evaluation.accuracy import accuracy_metrics
from ccss_pipeline.evaluation.comparison_reading import BASELINE, CCSS, ComparisonResult, delta_auc, records
from ccss_pipeline.evaluation.raw_grid import raw_grid_report
from ccss_pipeline.evaluation.seeds import summarize_over_seeds
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.tuning.comparison_rows import (
    ROWS,
    CompareData,
    ComparisonRun,
    Fitted,
    Tuned,
    comparison_training,
    fit_row,
    tune_row,
)

logger = logging.getLogger(__name__)

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
    run = ComparisonRun(
        data, comparison_training(training, compare), evaluation, compare, Path(storage_root), database_url
    )
    tuned: dict[str, Tuned] = {}
    for method in compare.methods:
        logger.info("compare: tuning %s (%d trials)", method, run.training.search.n_trials if ROWS[method].tuned else 0)
        tuned[method] = tune_row(method, run)
    rows = []
    for seed in run.seeds():  # seeds outermost: machine load falls on every row alike
        for method in compare.methods:
            fitted = fit_row(method, tuned[method], seed, run)
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
