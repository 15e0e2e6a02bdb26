"""The report's reading of one backbone: CCSS against its baseline, from the numbers alone.

:func:`verdict` says what CCSS did to AUC (with the paired 95% interval), the raw-grid wrong-step share,
the edge test and rows monotone, whether its wrong steps sit at the bucket edges, and every other metric
CCSS demonstrably worsens (:func:`costs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ccss_pipeline.evaluation.findings import ModelResult
from ccss_pipeline.evaluation.presentation import (
    HEADLINE,
    METRIC_LABELS,
    SHARE_METRICS,
    as_float,
    fmt_diff,
    fmt_interval,
    fmt_value,
    is_missing,
    pct_digits,
    sign_of_interval,
)

#: The side on which each metric of the paired differences is worse: -1 where a fall is a cost (AUC,
#: accuracy, rows monotone…), +1 where a rise is (LogLoss, Brier, wrong-step shares…). Metrics without a
#: better side (the recalibration map, the oracle's ceiling) are absent: they are never a cost.
WORSE_SIDE = {
    **dict.fromkeys(["auc", "gauc", "accuracy", "precision", "recall", "f1", "monotone_row_share",
                     "ice_monotone_share", "true_direction_agreement"], -1),
    **dict.fromkeys(["logloss", "logloss_uncalibrated", "brier", "brier_uncalibrated", "wrong_step_share",
                     "wrong_step_share_inside", "wrong_step_share_crossing", "max_feature_wrong_step_share",
                     "edge_wrong_share", "mean_wrong_mass", "neighbour_violation_rate"], +1),
}  # fmt: skip
#: Costs the verdict's first clauses already read with their interval (AUC, the wrong-step share).
VERDICT_READS = ("auc", "wrong_step_share")


def costs(paired: Mapping[str, Mapping[str, Any]], skip: Sequence[str] | set[str] = ()) -> list[str]:
    """The metrics (in the order of the headline table) whose paired CCSS − baseline 95% interval excludes
    0 on the worse side (:data:`WORSE_SIDE`), less ``skip``: what CCSS demonstrably costs, so that no
    verdict reads only AUC and monotonicity while, say, LogLoss rose beyond the seed noise."""
    order = [m for m, _, _ in HEADLINE] + sorted(set(WORSE_SIDE) - set(METRIC_LABELS))
    worse = {-1: "below", 1: "above"}
    return [m for m in order
            if m in WORSE_SIDE and m not in skip
            and sign_of_interval(paired.get(m), share=m in SHARE_METRICS) == worse[WORSE_SIDE[m]]]  # fmt: skip


def _cost_sentence(
    paired: Mapping[str, Mapping[str, Any]], skip: Sequence[str] | set[str], threshold: float = 0.5
) -> str:
    """ " Costs beyond the seed noise …: GAUC -0.0050 [...]; …" or "" when CCSS costs nothing measurable."""
    items = []
    for m in costs(paired, skip):
        row, share = paired[m], m in SHARE_METRICS
        label = METRIC_LABELS.get(m, m.replace("_", " ")).replace("{t}", f"{threshold:g}")
        items.append(
            f"{label} {fmt_diff(row.get('mean'), share, pct_digits(row.get('mean')))} {fmt_interval(row, share)}"
        )
    if not items:
        return ""
    return (" Costs beyond the seed noise (CCSS − baseline, the paired 95% interval excludes 0 on the worse side): "
            + "; ".join(items) + ".")  # fmt: skip


def _accuracy_clause(base: ModelResult, ccss: ModelResult, p_auc: Mapping[str, Any]) -> str:
    """AUC of CCSS against its baseline, with the paired difference's interval where there is one."""
    auc_b, auc_c = base.mean.get("auc"), ccss.mean.get("auc")
    d_auc = p_auc.get("mean") if not is_missing(p_auc.get("mean")) else as_float(auc_c) - as_float(auc_b)
    versus = f"{fmt_value(auc_c, False)} vs {fmt_value(auc_b, False)}, difference {fmt_diff(d_auc, False)}"
    side = sign_of_interval(p_auc)
    if side is None:
        n = int(p_auc.get("n") or 0)
        return f"AUC {versus} ({n} paired seed{'s' if n != 1 else ''}, no interval)"
    verb = {"contains": "keeps AUC within the seed noise", "below": "lowers AUC", "above": "raises AUC"}[side]
    return f"CCSS {verb} ({versus}, 95% interval {fmt_interval(p_auc, False)}{' contains 0' if side == 'contains' else ''})"


def _monotonicity_clause(base: ModelResult, ccss: ModelResult, paired: Mapping[str, Mapping[str, Any]]) -> str:
    """The raw-grid wrong-step share of the baseline against CCSS, with the paired interval's side."""
    ws_b, ws_c = as_float(base.mean.get("wrong_step_share")), as_float(ccss.mean.get("wrong_step_share"))
    x, y = fmt_value(ws_b, True), fmt_value(ws_c, True)
    if is_missing(ws_b) or is_missing(ws_c):
        mono = f"raw-grid wrong-step share: baseline {x}, CCSS {y}"
    else:
        mono = (f"cuts the raw-grid wrong-step share from {x} to {y}" if ws_c < ws_b else
                f"raises the raw-grid wrong-step share from {x} to {y}" if ws_c > ws_b else
                f"leaves the raw-grid wrong-step share at {x}")  # fmt: skip
    ws_side = sign_of_interval(paired.get("wrong_step_share"), share=True)
    if ws_side is not None:
        mono += f" (95% interval of the paired difference {'contains 0' if ws_side == 'contains' else f'{ws_side} 0'})"
    return mono


def _edge_clause(ccss: ModelResult) -> str:
    """ " With CCSS a step crossing a bucket edge goes the wrong way far more often …" or ""."""
    ws_c = as_float(ccss.mean.get("wrong_step_share"))
    inside, crossing = (
        as_float(ccss.mean.get("wrong_step_share_inside")),
        as_float(ccss.mean.get("wrong_step_share_crossing")),
    )
    if not (
        ws_c > 0
        and not (is_missing(inside) or is_missing(crossing))
        and max(inside, crossing) > 2 * min(inside, crossing)
    ):
        return ""
    more, less = (
        ("crossing a bucket edge", "inside a bucket") if crossing > inside else ("inside a bucket", "crossing an edge")
    )
    return (f" With CCSS a step {more} goes the wrong way far more often than one {less} "
            f"({fmt_value(max(inside, crossing), True)} vs {fmt_value(min(inside, crossing), True)}).")  # fmt: skip


def verdict(
    backbone: str,
    base: ModelResult,
    ccss: ModelResult,
    paired: Mapping[str, Mapping[str, Any]],
    hidden: Sequence[str] | set[str] = (),
    threshold: float = 0.5,
) -> str:
    """One paragraph reading one backbone's numbers: AUC (with the paired interval), the raw-grid
    wrong-step share, the edge test, rows monotone, whether CCSS's wrong steps sit at the edges, and every
    other metric CCSS demonstrably worsens (:func:`costs`; ``hidden``: rows the report leaves out)."""
    acc = _accuracy_clause(base, ccss, paired.get("auc") or {})
    mono = _monotonicity_clause(base, ccss, paired)
    text = (
        f"{backbone}: {acc}, and {mono}; edge-test wrong share {fmt_value(base.mean.get('edge_wrong_share'), True)} → "
        f"{fmt_value(ccss.mean.get('edge_wrong_share'), True)}; rows monotone over the whole grid "
        f"{fmt_value(base.mean.get('monotone_row_share'), True)} → {fmt_value(ccss.mean.get('monotone_row_share'), True)}."
    )
    return text + _edge_clause(ccss) + _cost_sentence(paired, {*VERDICT_READS, *hidden}, threshold)
