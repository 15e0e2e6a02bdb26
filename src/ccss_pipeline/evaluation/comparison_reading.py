"""The "Methods compared" table and its plain reading, from the per-seed results of
:mod:`ccss_pipeline.tuning.comparison` (kept apart: how the numbers are worded is not how they are made).

Every sentence is generated from the numbers: a row against the baseline (its wrong steps, edge test,
ΔAUC with the 95% interval paired on the seed, training cost), then where CCSS wins and loses against
each other row — an AUC difference only where its paired interval excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from ccss_pipeline.config import Variant
from ccss_pipeline.evaluation.seeds import format_mean_std, paired_difference

#: the reference row of every ΔAUC, and the row the reading is about: the two variants the training fits
BASELINE, CCSS = Variant.BASELINE, Variant.CCSS


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts keyed by column name."""
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def delta_auc(seeds: pd.DataFrame, treatment: str, control: str = BASELINE) -> dict[str, Any]:
    """``treatment`` − ``control`` test AUC paired on the seed, with its 95% interval."""
    d = paired_difference(seeds, "auc", by=(), variant_col="method", treatment=treatment, control=control).iloc[0]
    return {
        "delta_auc": d["mean"],
        "delta_auc_std": d["std"],
        "delta_auc_ci_low": d["ci_low"],
        "delta_auc_ci_high": d["ci_high"],
        "delta_auc_n": int(d["n"]),
    }


def _signed(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.4f}".replace("-", "−")


def _interval(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "(one seed: no interval)"
    return f"[{_signed(low)}, {_signed(high)}]"


def _pct(value: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.{digits}f}%"


def _pct_pair(a: float, b: float) -> str:
    """``a vs b`` as percentages with the fewest decimals (2 to 4) that tell two different shares apart:
    "0.00% vs 0.00%" would say nothing."""
    digits = next((d for d in (2, 3, 4) if _pct(a, d) != _pct(b, d)), 4)
    return f"{_pct(a, digits)} vs {_pct(b, digits)}"


def _mean_std(r: dict[str, Any], metric: str, pct: bool = False) -> str:
    return format_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"], pct=pct, digits=2 if pct else 4)


def _reference(r: dict[str, Any]) -> str:
    """What a row's training time is relative to."""
    return "the λ = 0 network" if r["family"] == "network" else "unconstrained LightGBM"


def _auc_verdict(d: dict[str, Any]) -> str:
    """What a paired ΔAUC says: its interval above or below 0, across it, or no interval (one seed)."""
    low, high = float(d["delta_auc_ci_low"]), float(d["delta_auc_ci_high"])
    if not (math.isfinite(low) and math.isfinite(high)):
        return "the difference may be noise"
    if low > 0:
        return "gains AUC (the interval is above 0)"
    if high < 0:
        return "costs AUC (the interval is below 0)"
    return "no AUC difference the seeds can tell (the interval spans 0)"


TABLE_HEAD = (
    "| method | trials | test AUC | ΔAUC vs baseline [95% CI] | accuracy | LogLoss | raw-grid wrong steps | "
    "worst feature | inside / crossing | edge test | rows monotone | training time |"
)


def _cells(r: dict[str, Any]) -> list[str]:
    """One table row: mean ± std over seeds; shares in %; n/a where a figure does not apply."""
    delta = f"{_signed(r['delta_auc'])} {_interval(r['delta_auc_ci_low'], r['delta_auc_ci_high'])}"
    return [
        f"{r['label']} (`{r['method']}`)",
        str(r["n_trials"]) if r["tuned"] else "—",
        _mean_std(r, "auc"),
        "reference" if r["method"] == BASELINE else delta,
        _mean_std(r, "accuracy"),
        _mean_std(r, "logloss"),
        _mean_std(r, "wrong_step_share", pct=True) + (" (by construction)" if r["by_construction"] else ""),
        f"{r['worst_feature']} {_pct(r['max_feature_wrong_step_share_mean'])}" if r["worst_feature"] else "—",
        f"{_pct(r['wrong_step_share_inside_mean'])} / {_pct(r['wrong_step_share_crossing_mean'])}",
        _mean_std(r, "edge_wrong_share", pct=True) if r["edge_test"] else "n/a (no bucket path)",
        _mean_std(r, "monotone_row_share", pct=True),
        f"{r['train_seconds_mean']:.3g} s, {r['time_ratio_mean']:.2f}× {_reference(r)}",
    ]


@dataclass
class ComparisonResult:
    """The comparison: one row per method and seed (``seeds``), one per method (``summary``), and the
    settings it ran with. :meth:`markdown` renders the table and its plain reading."""

    seeds: pd.DataFrame
    summary: pd.DataFrame
    backbone: str
    n_trials: int
    n_seeds: int

    def _row(self, method: str) -> dict[str, Any]:
        return next(r for r in records(self.summary) if r["method"] == method)

    def table(self) -> str:
        """The Markdown table: one row per method."""
        rows = ["| " + " | ".join(_cells(r)) + " |" for r in records(self.summary)]
        return "\n".join([TABLE_HEAD, "|" + "---|" * TABLE_HEAD.count(" | ") + "---|", *rows])

    def reading(self) -> list[str]:
        """Plain sentences from the numbers: what each row buys and costs against the baseline, and
        where CCSS wins and loses against each other row."""
        methods = list(self.summary["method"])
        lines = [
            f"Backbone `{self.backbone}`; every tuned row had {self.n_trials} trials chosen on validation only; "
            f"{self.n_seeds} seed(s) per row, measured on the test split. The baseline breaks the declared "
            f"directions in {_pct(self._row(BASELINE)['wrong_step_share_mean'])} of raw-grid steps."
        ]
        lines += [self._against_baseline(self._row(m)) for m in methods if m != BASELINE]
        if CCSS in methods:
            lines += self._ccss_versus_others()
        return lines

    def _against_baseline(self, r: dict[str, Any]) -> str:
        if r["by_construction"]:
            mono = f"{_pct(r['wrong_step_share_mean'])} wrong steps: monotone by construction, whatever its weights"
        else:
            base = self._row(BASELINE)
            mono = f"wrong steps {_pct(r['wrong_step_share_mean'])} (baseline {_pct(base['wrong_step_share_mean'])})"
            if r["edge_test"]:
                mono += (
                    f", edge test {_pct(r['edge_wrong_share_mean'])} (baseline {_pct(base['edge_wrong_share_mean'])})"
                )
        delta = f"{_signed(r['delta_auc'])} {_interval(r['delta_auc_ci_low'], r['delta_auc_ci_high'])}"
        same = " (its fits do not change with the seed)" if r["n_seeds"] > 1 and r["auc_std"] == 0 else ""
        return (
            f"{r['label']} (`{r['method']}`): {mono}; ΔAUC {delta} — {_auc_verdict(r)}{same}; "
            f"training {r['time_ratio_mean']:.2f}× {_reference(r)}."
        )

    def _ccss_versus_others(self) -> list[str]:
        """Where CCSS wins and loses against each other row: AUC paired on the seed (its interval
        decides), wrong steps on the means, training time against the other networks (each relative to
        the same baseline; LightGBM's is relative to its own family)."""
        wins: list[str] = []
        losses: list[str] = []
        ccss = self._row(CCSS)
        for method in self.summary["method"]:
            if method in (BASELINE, CCSS):
                continue
            other = self._row(method)
            d = delta_auc(self.seeds, CCSS, method)
            said = f"AUC against `{method}` ({_signed(d['delta_auc'])} {_interval(d['delta_auc_ci_low'], d['delta_auc_ci_high'])})"
            verdict = _auc_verdict(d)
            if verdict.startswith(("gains", "costs")):
                (wins if verdict.startswith("gains") else losses).append(said)
            ours, theirs = ccss["wrong_step_share_mean"], other["wrong_step_share_mean"]
            if ours != theirs:
                (wins if ours < theirs else losses).append(
                    f"{'fewer' if ours < theirs else 'more'} wrong steps than `{method}` ({_pct_pair(ours, theirs)})"
                )
            ours, theirs = ccss["time_ratio_mean"], other["time_ratio_mean"]
            if other["family"] == "network" and math.isfinite(ours) and math.isfinite(theirs):
                (wins if ours < theirs else losses).append(
                    f"{'faster' if ours < theirs else 'slower'} to train than `{method}` "
                    f"({ours:.2f}× vs {theirs:.2f}× the baseline)"
                )
        return [
            "Where CCSS wins: " + ("; ".join(wins) if wins else "nowhere in this run") + ".",
            "Where CCSS loses: " + ("; ".join(losses) if losses else "nowhere in this run") + ".",
        ]

    def markdown(self) -> str:
        """A "Methods compared" section: the table and its plain reading."""
        bullets = "\n".join(f"- {line}" for line in self.reading())
        return f"## Methods compared\n\n{self.table()}\n\n{bullets}\n"


# =================================================================================================== run
