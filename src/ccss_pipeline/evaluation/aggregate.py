"""The per-model figures over training seeds: summary, paired CCSS − baseline differences, ``metrics.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from ccss_pipeline.evaluation.results import SEED_METRICS
from ccss_pipeline.evaluation.seeds import paired_difference, summarize_over_seeds
from ccss_pipeline.model.epoch_limit import at_epoch_limit


@dataclass(frozen=True)
class SeedAggregate:
    """The figures over training seeds: ``summary`` (mean ± std per backbone and variant), ``paired``
    (CCSS − baseline per backbone and metric, with its 95% interval) and ``metrics`` (``metrics.json``)."""

    summary: pd.DataFrame
    paired: pd.DataFrame
    metrics: dict[str, float]

    def outputs(self) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
        """The catalog's datasets in the node's order: ``seed_summary``, ``paired_differences``, ``metrics``."""
        return self.summary, self.paired, self.metrics


def aggregate_over_seeds(seed_metrics: pd.DataFrame) -> SeedAggregate:
    """Mean ± std over seeds per backbone and variant, the paired CCSS − baseline difference with a 95%
    Student-t interval per backbone, and the flat ``metrics.json`` of both (what ``dvc metrics`` shows).

    The summary keeps each group's recalibration kind (``recalibration``; kinds joined by "/" if its
    seeds differ), which the report and the model card name, and which of its seeds' best epoch was the
    last allowed (``epoch_limit_seeds``, a JSON list; ``max_epochs``): they warn of those as undertrained."""
    present = [m for m in SEED_METRICS if m in seed_metrics.columns and seed_metrics[m].notna().any()]
    frame = seed_metrics.astype({m: float for m in present})
    summary = summarize_over_seeds(frame, ["backbone", "variant"], present)
    if "recalibration" in seed_metrics.columns:
        kinds = seed_metrics.groupby(["backbone", "variant"], sort=True)["recalibration"].agg(
            lambda k: "/".join(sorted({str(v) for v in k}))
        )
        summary = summary.merge(kinds.reset_index(), on=["backbone", "variant"], how="left")
        summary.insert(2, "recalibration", summary.pop("recalibration"))
    summary = summary.merge(_epoch_limits(seed_metrics), on=["backbone", "variant"], how="left")
    paired = pd.concat([paired_difference(frame, m) for m in present], ignore_index=True)
    return SeedAggregate(
        summary=summary,
        paired=paired.drop(columns=["differences", "seeds"], errors="ignore"),
        metrics=_flat_metrics(summary, paired, present),
    )


def _flat_metrics(summary: pd.DataFrame, paired: pd.DataFrame, present: list[str]) -> dict[str, float]:
    """``metrics.json``: ``<backbone>__<variant>.<metric>.<mean|std>``, ``….n_seeds`` and
    ``<backbone>.ccss_minus_baseline.<metric>.<mean|ci_low|ci_high>`` (missing values left out)."""
    metrics: dict[str, float] = {}
    for row in summary.to_dict("records"):
        for m in present:
            for stat in ("mean", "std"):
                value = row[f"{m}_{stat}"]
                if pd.notna(value):
                    metrics[f"{row['backbone']}__{row['variant']}.{m}.{stat}"] = float(value)
        metrics[f"{row['backbone']}__{row['variant']}.n_seeds"] = int(row["n_seeds"])
    for row in paired.to_dict("records"):
        for stat in ("mean", "ci_low", "ci_high"):
            if pd.notna(row[stat]):
                metrics[f"{row['backbone']}.ccss_minus_baseline.{row['metric']}.{stat}"] = float(row[stat])
    return metrics


def _epoch_limits(seed_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per backbone and variant: the seeds whose best epoch was the last allowed (``epoch_limit_seeds``,
    a JSON list, so it survives the CSV) and the epoch budget (``max_epochs``, the largest)."""
    rows = []
    for (backbone, variant), group in seed_metrics.groupby(["backbone", "variant"], sort=True):
        best = group["best_epoch"] if "best_epoch" in group.columns else pd.Series(None, index=group.index)
        limit = group["max_epochs"] if "max_epochs" in group.columns else pd.Series(None, index=group.index)
        seeds = sorted(int(s) for s, b, m in zip(group["seed"], best, limit, strict=True) if at_epoch_limit(b, m))
        budget = pd.to_numeric(limit, errors="coerce").max()
        rows.append({"backbone": backbone, "variant": variant, "epoch_limit_seeds": json.dumps(seeds),
                     "max_epochs": None if pd.isna(budget) else int(budget)})  # fmt: skip
    return pd.DataFrame(rows, columns=["backbone", "variant", "epoch_limit_seeds", "max_epochs"])
