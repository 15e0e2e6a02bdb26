"""The human-readable evaluation report: one Markdown and one HTML document with the same content.

:func:`render_report` turns a :class:`ReportContext` into ``(markdown, html)``: this module builds every
sentence and table cell (the view), the Jinja2 templates ``templates/report.md.j2`` and
``report.html.j2`` lay them out (:mod:`.render`), so the two documents say the same. The context holds
the seed-aggregated tables of the evaluation stage: ``ModelResult.from_summary(seed_summary)``
(mean ± std per backbone and variant), the paired CCSS − baseline differences, the raw-grid
per-feature table, the chosen parameters per backbone, the method parameters and the plots: their
paths (relative to the directory the two files are written to) and, where given, their PNG bytes.

The Markdown links each image by its relative path; the HTML embeds each image that has bytes as a
``data:image/png;base64`` URI, so the page is self-contained (it survives being mailed or moved). A
plot without bytes is named in the HTML, not linked.

Nothing assumes what the label means: the text names it through ``ReportContext.label_name``.

Variants match case-insensitively: ``"baseline"`` and ``"ccss"`` drive the verdicts; any other
variant (a related method) only appears in the tables. Every sentence is built from the numbers; a
missing value renders as "n/a".
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.evaluation.plots import ONE_BUCKET_NOTE
from ccss_pipeline.evaluation.render import Figure, Part, Table, render
from ccss_pipeline.evaluation.seeds import TOO_FEW_SEEDS, format_mean_std, share_interval, summarize_over_seeds

logger = logging.getLogger(__name__)

BASELINE = "baseline"
CCSS = "ccss"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Headline rows: (metric, label, is a share). Shown when the summary has the metric. ``{t}`` in a
#: label is the decision threshold of the thresholded metrics (``ReportContext.method["threshold"]``).
HEADLINE = [
    ("auc", "AUC", False),
    ("gauc", "GAUC", False),
    ("logloss", "LogLoss", False),
    ("logloss_uncalibrated", "LogLoss before recalibration", False),
    ("accuracy", "accuracy (P ≥ {t})", False),
    ("precision", "precision (P ≥ {t})", False),
    ("recall", "recall (P ≥ {t})", False),
    ("f1", "F1 (P ≥ {t})", False),
    ("brier", "Brier score", False),
    ("brier_uncalibrated", "Brier score before recalibration", False),
    ("recalibration_temperature", "recalibration: T (the logit is divided by T)", False),
    ("recalibration_shift", "recalibration: shift b (Platt)", False),
    ("oracle_auc", "oracle AUC (ceiling)", False),
    ("wrong_step_share", "raw-grid wrong-step share (pooled)", True),
    ("wrong_step_share_inside", "… steps inside a bucket", True),
    ("wrong_step_share_crossing", "… steps crossing an edge", True),
    ("max_feature_wrong_step_share", "worst feature's wrong-step share", True),
    ("edge_wrong_share", "edge test: rows moving the wrong way", True),
    ("monotone_row_share", "rows monotone over the whole grid", True),
    ("neighbour_violation_rate", "secondary: neighbour-move violation rate (the move the loss trains)", True),
    ("ice_monotone_share", "secondary: bucket-centre ICE monotone share", True),
    ("true_direction_agreement", "agreement with the true directions", True),
]
_LABEL = {m: label for m, label, _ in HEADLINE}


def _threshold(ctx: ReportContext) -> float:
    t = _float(ctx.method.get("threshold", 0.5))
    return 0.5 if _missing(t) else t


def _label(metric: str, ctx: ReportContext) -> str:
    return _LABEL[metric].replace("{t}", f"{_threshold(ctx):g}")


_SHARE = {m for m, _, share in HEADLINE if share}
#: Metrics of the paired CCSS − baseline table, in order.
PAIRED = ["auc", "gauc", "logloss", "logloss_uncalibrated", "accuracy", "precision", "recall", "f1", "brier",
          "brier_uncalibrated", "wrong_step_share", "wrong_step_share_inside", "wrong_step_share_crossing",
          "edge_wrong_share", "monotone_row_share"]  # fmt: skip
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
#: Rows that only mean something for a recalibrated model (hidden for a backbone without one).
RECALIBRATION_ROWS = ("logloss_uncalibrated", "brier_uncalibrated", "recalibration_temperature", "recalibration_shift")
#: What each recalibration kind does, as the report and the model card say it.
RECALIBRATION_TEXT = {
    "temperature": "temperature scaling of the logit (z / T)",
    "platt": "Platt scaling of the logit (σ(a·z + b), a > 0)",
}
#: Per-feature raw-grid columns (means over seeds); the last is the secondary bucket-centre rate.
FEATURE_COLUMNS = [
    ("wrong_step_share", "wrong-step share"), ("wrong_step_share_inside", "inside a bucket"),
    ("wrong_step_share_crossing", "crossing an edge"), ("edge_wrong_share", "edge test wrong"),
    ("monotone_row_share", "rows monotone"), ("neighbour_violation_rate", "neighbour-move rate (secondary)"),
]  # fmt: skip


@dataclass
class ModelResult:
    """One (backbone, variant) over its training seeds: ``mean[m]`` and ``std[m]`` per metric
    (std NaN with one seed)."""

    backbone: str
    variant: str
    n_seeds: int
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    recalibration: str = "none"  # the kind of monotone recalibration its probabilities went through
    epoch_limit_seeds: list[int] = field(default_factory=list)  # seeds whose best epoch was the last allowed
    max_epochs: int | None = None  # their epoch budget (optimizer.max_epochs)

    @classmethod
    def from_summary(cls, summary: pd.DataFrame) -> list[ModelResult]:
        """From a ``summarize_over_seeds`` table (columns backbone, variant, n_seeds, ``<m>_mean``,
        ``<m>_std``, optionally ``recalibration``: the kind; a summary without it had none; optionally
        ``epoch_limit_seeds`` (a JSON list) and ``max_epochs``)."""
        metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
        return [
            cls(
                str(row["backbone"]),
                str(row["variant"]),
                int(row["n_seeds"]),
                {m: _float(row[f"{m}_mean"]) for m in metrics},
                {m: _float(row.get(f"{m}_std")) for m in metrics},
                _kind(row.get("recalibration")),
                _seed_list(row.get("epoch_limit_seeds")),
                None if _missing(row.get("max_epochs")) else int(_float(row["max_epochs"])),
            )  # fmt: skip
            for row in summary.to_dict("records")
        ]

    @property
    def recalibrated(self) -> bool:
        return self.recalibration != "none"

    @property
    def display(self) -> str:
        return "CCSS" if self.variant.lower() == CCSS else self.variant

    def cell(self, metric: str) -> str:
        return _mean_std(self.mean.get(metric), self.std.get(metric), metric in _SHARE)


@dataclass
class PlotRef:
    """A figure file, ``path`` relative to the report's directory, shown under the heading ``section``;
    ``png``: the image itself, which the HTML embeds (the Markdown links ``path``)."""

    path: str
    caption: str
    section: str = "Figures"
    png: bytes | None = None


@dataclass
class ReportContext:
    """Everything the report shows.

    - ``title``, ``source`` (free text), ``rows_per_split`` (split → rows), ``directed_features``
      (name → ±1) and ``backbones``, all in display order;
    - ``results``: one :class:`ModelResult` per (backbone, variant);
    - ``paired``: CCSS − baseline per backbone and metric (columns backbone, metric, n, mean, std,
      ci_low, ci_high; :func:`.seeds.paired_difference`);
    - ``per_feature``: raw-grid per-feature rows, one per (backbone, variant, seed, feature), averaged
      over seeds here (an optional ``neighbour_violation_rate`` column is shown as secondary);
    - ``chosen_params``: backbone → the chosen CCSS parameters (loss, weight, margin, temperature,
      learning_rate, source, val_auc, val_wrong_step_share, feasible, max_violation, study, n_trials);
    - ``method``: grid_levels, grid_rows, eps, max_rows (None = all), optionally move (CCSS's move)
      and threshold (of accuracy, precision, recall and F1; default 0.5);
    - ``plots``: :class:`PlotRef` list, shown in order at the end; ``split_note`` and ``notes``:
      extra paragraphs;
    - ``label_name``: what the models predict (the schema's label column), named in the text;
    - ``gauc_note``: shown instead of GAUC figures when GAUC cannot be measured (e.g. "GAUC: n/a —
      the schema declares no user column"); GAUC rows are then left out of the tables;
    - ``unconstrained``: directed features with a single bucket — CCSS cannot constrain them, so every
      per-feature table marks them instead of showing numbers.
    """

    title: str
    source: str
    rows_per_split: dict[str, int]
    directed_features: dict[str, int]
    backbones: list[str]
    results: list[ModelResult]
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_feature: pd.DataFrame = field(default_factory=pd.DataFrame)
    chosen_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)
    plots: list[PlotRef] = field(default_factory=list)
    split_note: str = ""
    notes: list[str] = field(default_factory=list)
    label_name: str = "label"
    gauc_note: str = ""
    unconstrained: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- format


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _missing(v: Any) -> bool:
    return v is None or not math.isfinite(_float(v))


def _pct_digits(v: Any) -> int:
    """2 decimals of a percentage, more for small values so that 0.004% does not read as 0.00%."""
    p = abs(100 * _float(v))
    return 2 if _missing(v) or p == 0 or p >= 0.1 else min(4, 1 - math.floor(math.log10(p)))


def _mean_std(mean: Any, std: Any, share: bool) -> str:
    if share:
        return format_mean_std(_float(mean), _float(std), pct=True, digits=_pct_digits(mean))
    return format_mean_std(_float(mean), _float(std))


def _value(v: Any, share: bool) -> str:
    if _missing(v):
        return "n/a"
    return f"{100 * float(v):.{_pct_digits(v)}f}%" if share else f"{float(v):.4f}"


def _diff(v: Any, share: bool, digits: int = 2) -> str:
    """A signed difference: 4 decimals, or percentage points for shares."""
    if _missing(v):
        return "n/a"
    return f"{100 * float(v):+.{digits}f} pp" if share else f"{float(v):+.4f}"


def _dir(d: int) -> str:
    return f"{int(d):+d}"


def _fmt_param(v: Any) -> str:
    return "—" if _missing(v) and not isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def _bounds(row: Mapping[str, Any] | None, share: bool) -> tuple[float, float] | None:
    """The paired difference's interval as it may be read: a difference of shares through
    :func:`.seeds.share_interval` (clipped to ±100 pp, none with too few seeds); None without one."""
    if row is None or _missing(row.get("ci_low")) or _missing(row.get("ci_high")):
        return None
    low, high = _float(row["ci_low"]), _float(row["ci_high"])
    if share:
        n = int(_float(row.get("n")) if not _missing(row.get("n")) else 0)
        return share_interval(low, high, n, difference=True)
    return low, high


def _interval(row: Mapping[str, Any] | None, share: bool) -> str:
    bounds = _bounds(row, share)
    if bounds is None:
        return TOO_FEW_SEEDS if share else "n/a (needs ≥ 2 paired seeds)"
    digits = _pct_digits((row or {}).get("mean"))
    return f"[{_diff(bounds[0], share, digits)}, {_diff(bounds[1], share, digits)}]"


def _sign_of_interval(row: Mapping[str, Any] | None, share: bool = False) -> str | None:
    """ "below" / "above" 0, "contains" 0, or None without an interval (the one :func:`_interval` prints)."""
    bounds = _bounds(row, share)
    if bounds is None:
        return None
    return "below" if bounds[1] < 0 else "above" if bounds[0] > 0 else "contains"


def _seed_list(value: Any) -> list[int]:
    """Seeds from a summary cell: a JSON list (``"[1, 2]"``), empty for a missing cell (older tables)."""
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        seeds = json.loads(value)
    except ValueError:
        return []
    return [int(s) for s in seeds] if isinstance(seeds, list) else []


def epoch_limit_warnings(results: Sequence[ModelResult], backbones: Sequence[str]) -> list[str]:
    """One sentence per model of ``backbones`` with a seed whose best epoch was the last one allowed:
    likely undertrained (the report and the model card say it; the training log said it per fit)."""
    out = []
    for r in sorted((r for r in results if r.backbone in backbones and r.epoch_limit_seeds),
                    key=lambda r: (list(backbones).index(r.backbone), _variant_rank(r.variant), r.variant)):  # fmt: skip
        seeds = ", ".join(str(s) for s in r.epoch_limit_seeds)
        plural = "s" if len(r.epoch_limit_seeds) != 1 else ""
        budget = "?" if r.max_epochs is None else str(r.max_epochs)
        out.append(
            f"Likely undertrained: {r.backbone} {r.display}, seed{plural} {seeds} (of {r.n_seeds}) — the best "
            f"validation epoch was the last one allowed (model_training.optimizer.max_epochs = {budget}), so "
            "validation was still improving when training stopped; raise max_epochs and retrain."
        )
    return out


def _kind(value: Any) -> str:
    """A recalibration kind from a summary cell ("none" for a missing one, e.g. an older run's table)."""
    return value.strip() if isinstance(value, str) and value.strip() else "none"


def hidden_recalibration_rows(models: Sequence[ModelResult]) -> set[str]:
    """The recalibration rows a table of ``models`` leaves out: all of them when none was recalibrated
    (they would repeat LogLoss and Brier), the shift when none was Platt-scaled (it is 0)."""
    if not any(r.recalibrated for r in models):
        return set(RECALIBRATION_ROWS)
    return set() if any("platt" in r.recalibration for r in models) else {"recalibration_shift"}


def _map_text(r: ModelResult) -> str:
    """The fitted map of one model, mean over seeds: ``T = 1.23`` (and ``b = -0.04`` for Platt)."""
    t = _float(r.mean.get("recalibration_temperature"))
    if "platt" in r.recalibration:
        return f"T = 1/a = {t:.3g}, b = {_float(r.mean.get('recalibration_shift')):+.3g}"
    return f"T = {t:.3g}"


def recalibration_sentence(results: Sequence[ModelResult], backbones: Sequence[str]) -> str:
    """One sentence: which recalibration the probabilities went through and what it changed — test
    LogLoss before → after per backbone and model, means over seeds, with the fitted map."""
    shown = [r for r in results if r.backbone in backbones]
    applied = [r for r in shown if r.recalibrated]
    if not applied:
        return ("Recalibration: none — every probability is the model's own logit through the sigmoid "
                "(model_training.recalibration: none).")  # fmt: skip
    kinds = sorted({k for r in applied for k in r.recalibration.split("/") if k != "none"})
    what = " / ".join(RECALIBRATION_TEXT.get(k, k) for k in kinds)
    parts = []
    for bb in backbones:
        models = sorted((r for r in shown if r.backbone == bb), key=lambda r: (_variant_rank(r.variant), r.variant))
        items = [
            f"{r.display} {_value(r.mean.get('logloss_uncalibrated'), False)} → "
            f"{_value(r.mean.get('logloss'), False)} ({_map_text(r)})"
            if r.recalibrated
            else f"{r.display} {_value(r.mean.get('logloss'), False)} (not recalibrated)"
            for r in models
        ]
        if items:
            parts.append(f"{bb}: {', '.join(items)}")
    return (
        f"Recalibration: {what}, fitted on the validation split for every model (CCSS and baselines alike) and "
        f"applied to every probability shown here, changed the test LogLoss (before → after, mean over seeds) "
        f"{'; '.join(parts)} — a strictly increasing map of the logit, it leaves AUC, GAUC and the direction of "
        "every step unchanged."
    )


def costs(paired: Mapping[str, Mapping[str, Any]], skip: Sequence[str] | set[str] = ()) -> list[str]:
    """The metrics (in the order of the headline table) whose paired CCSS − baseline 95% interval excludes
    0 on the worse side (:data:`WORSE_SIDE`), less ``skip``: what CCSS demonstrably costs, so that no
    verdict reads only AUC and monotonicity while, say, LogLoss rose beyond the seed noise."""
    order = [m for m, _, _ in HEADLINE] + sorted(set(WORSE_SIDE) - set(_LABEL))
    worse = {-1: "below", 1: "above"}
    return [m for m in order
            if m in WORSE_SIDE and m not in skip
            and _sign_of_interval(paired.get(m), share=m in _SHARE) == worse[WORSE_SIDE[m]]]  # fmt: skip


def _cost_sentence(
    paired: Mapping[str, Mapping[str, Any]], skip: Sequence[str] | set[str], threshold: float = 0.5
) -> str:
    """ " Costs beyond the seed noise …: GAUC -0.0050 [...]; …" or "" when CCSS costs nothing measurable."""
    items = []
    for m in costs(paired, skip):
        row, share = paired[m], m in _SHARE
        label = _LABEL.get(m, m.replace("_", " ")).replace("{t}", f"{threshold:g}")
        items.append(f"{label} {_diff(row.get('mean'), share, _pct_digits(row.get('mean')))} {_interval(row, share)}")
    if not items:
        return ""
    return (" Costs beyond the seed noise (CCSS − baseline, the paired 95% interval excludes 0 on the worse side): "
            + "; ".join(items) + ".")  # fmt: skip


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
    auc_b, auc_c, p_auc = base.mean.get("auc"), ccss.mean.get("auc"), paired.get("auc") or {}
    d_auc = p_auc.get("mean") if not _missing(p_auc.get("mean")) else _float(auc_c) - _float(auc_b)
    versus = f"{_value(auc_c, False)} vs {_value(auc_b, False)}, difference {_diff(d_auc, False)}"
    side = _sign_of_interval(p_auc)
    if side is None:
        n = int(p_auc.get("n") or 0)
        acc = f"AUC {versus} ({n} paired seed{'s' if n != 1 else ''}, no interval)"
    else:
        verb = {"contains": "keeps AUC within the seed noise", "below": "lowers AUC", "above": "raises AUC"}[side]
        acc = f"CCSS {verb} ({versus}, 95% interval {_interval(p_auc, False)}{' contains 0' if side == 'contains' else ''})"
    ws_b, ws_c = _float(base.mean.get("wrong_step_share")), _float(ccss.mean.get("wrong_step_share"))
    x, y = _value(ws_b, True), _value(ws_c, True)
    if _missing(ws_b) or _missing(ws_c):
        mono = f"raw-grid wrong-step share: baseline {x}, CCSS {y}"
    else:
        mono = (f"cuts the raw-grid wrong-step share from {x} to {y}" if ws_c < ws_b else
                f"raises the raw-grid wrong-step share from {x} to {y}" if ws_c > ws_b else
                f"leaves the raw-grid wrong-step share at {x}")  # fmt: skip
    ws_side = _sign_of_interval(paired.get("wrong_step_share"), share=True)
    if ws_side is not None:
        mono += f" (95% interval of the paired difference {'contains 0' if ws_side == 'contains' else f'{ws_side} 0'})"
    text = (
        f"{backbone}: {acc}, and {mono}; edge-test wrong share {_value(base.mean.get('edge_wrong_share'), True)} → "
        f"{_value(ccss.mean.get('edge_wrong_share'), True)}; rows monotone over the whole grid "
        f"{_value(base.mean.get('monotone_row_share'), True)} → {_value(ccss.mean.get('monotone_row_share'), True)}."
    )
    inside, crossing = (
        _float(ccss.mean.get("wrong_step_share_inside")),
        _float(ccss.mean.get("wrong_step_share_crossing")),
    )
    if ws_c > 0 and not (_missing(inside) or _missing(crossing)) and max(inside, crossing) > 2 * min(inside, crossing):
        more, less = (
            ("crossing a bucket edge", "inside a bucket")
            if crossing > inside
            else ("inside a bucket", "crossing an edge")
        )
        text += (f" With CCSS a step {more} goes the wrong way far more often than one {less} "
                 f"({_value(max(inside, crossing), True)} vs {_value(min(inside, crossing), True)}).")  # fmt: skip
    return text + _cost_sentence(paired, {*VERDICT_READS, *hidden}, threshold)


# ---------------------------------------------------------------------------------------- the view
# What the templates lay out (templates/report.md.j2, report.html.j2): every sentence and every cell is
# built here, so the Markdown and the HTML say the same; the templates only place and format it.

HEADLINE_INTRO = (
    "Mean ± standard deviation over the training seeds on the test split. The raw-grid figures sweep each directed "
    "feature's raw value, a move the training loss never sees; the neighbour-move rate is the move the loss trains "
    "and is shown as secondary."
)
PER_FEATURE_INTRO = (
    "Means over the training seeds. Wrong-step shares are per step of the feature's raw grid; the edge test and rows "
    "monotone (along this feature's whole grid) are shares of sampled rows. Grid: a continuous feature is swept "
    "over quantile levels of its training values, a discrete one (a count, days: few distinct values) over every "
    "value it takes in training, and its edge test is the step from the largest value below each boundary to the "
    "smallest at or above it."
)
PARAMETERS_INTRO = (
    "Per backbone, the Optuna trial with the best validation AUC among those whose validation raw-grid wrong-step "
    "share and edge test meet their targets; each seed's baseline (λ = 0) shares every other setting."
)
NO_MODEL = "No trained model of this backbone was evaluated."


def _variant_rank(variant: str) -> int:
    v = variant.lower()
    return 0 if v == BASELINE else 1 if v == CCSS else 2


def _find(results: Sequence[ModelResult], backbone: str, variant: str) -> ModelResult | None:
    return next((r for r in results if r.backbone == backbone and r.variant.lower() == variant), None)


def _paired_for(ctx: ReportContext, backbone: str) -> dict[str, dict[str, Any]]:
    if ctx.paired is None or ctx.paired.empty:
        return {}
    part = ctx.paired[ctx.paired["backbone"].astype(str) == backbone]
    return {str(r["metric"]): {str(k): v for k, v in r.items()} for r in part.to_dict("records")}


def _seeds_header(r: ModelResult) -> str:
    return f"{r.display} ({r.n_seeds} seed{'s' if r.n_seeds != 1 else ''})"


def _paired_table(ctx: ReportContext, paired: Mapping[str, Mapping[str, Any]], hidden: set[str]) -> Table | None:
    """CCSS − baseline per metric with its interval; None when no metric has a paired seed."""
    rows = []
    for m in PAIRED:
        row = paired.get(m)
        if m in hidden or row is None or not int(row.get("n") or 0):
            continue
        share = m in _SHARE
        rows.append([_label(m, ctx), str(int(row["n"])), _diff(row["mean"], share, _pct_digits(row["mean"])),
                     _interval(row, share)])  # fmt: skip
    return Table(["metric", "pairs", "mean difference", "95% interval"], rows) if rows else None


def _headline(ctx: ReportContext, bb: str) -> dict[str, Any]:
    """One backbone's results table, its paired differences and the verdict."""
    models = sorted((r for r in ctx.results if r.backbone == bb), key=lambda r: (_variant_rank(r.variant), r.variant))
    if not models:
        return {"name": bb, "parts": [Part([NO_MODEL])]}
    hidden = ({"gauc"} if ctx.gauc_note else set()) | hidden_recalibration_rows(models)
    metrics = [m for m, _, _ in HEADLINE if m not in hidden and any(not _missing(r.mean.get(m)) for r in models)]
    results = Table(["metric"] + [_seeds_header(r) for r in models],
                    [[_label(m, ctx)] + [r.cell(m) for r in models] for m in metrics])  # fmt: skip
    parts = [Part(table=results)]
    paired = _paired_for(ctx, bb)
    table = _paired_table(ctx, paired, hidden)
    if table is not None:
        parts.append(Part([f"CCSS − baseline, paired on the training seed ({bb}):"], table))
    base, ccss = _find(models, bb, BASELINE), _find(models, bb, CCSS)
    if base and ccss:
        parts.append(Part(["Verdict — " + verdict(bb, base, ccss, paired, hidden, _threshold(ctx))]))
    undertrained = epoch_limit_warnings(models, [bb])
    if undertrained:
        parts.append(Part(undertrained))
    return {"name": bb, "parts": parts}


def _per_feature(ctx: ReportContext) -> Part | None:
    table = ctx.per_feature
    if table is None or table.empty or "feature" not in table.columns:
        return None
    metrics = [(m, label) for m, label in FEATURE_COLUMNS if m in table.columns]
    summary = summarize_over_seeds(table, ["backbone", "variant", "feature"], [m for m, _ in metrics])
    border = {b: i for i, b in enumerate(ctx.backbones)}
    forder = {f: i for i, f in enumerate(ctx.directed_features)}
    summary = summary.assign(
        _b=summary["backbone"].map(lambda b: border.get(b, len(border))),
        _f=summary["feature"].map(lambda f: forder.get(f, len(forder))),
        _v=summary["variant"].map(_variant_rank),
    ).sort_values(["_b", "_f", "_v", "variant"])
    grids = _grid_by_feature(table)
    rows = []
    unconstrained = set(ctx.unconstrained)
    for r in summary.to_dict("records"):
        name = str(r["feature"])
        d = ctx.directed_features.get(name)
        cells = (([ONE_BUCKET_NOTE] + ["—"] * len(metrics))[: len(metrics)] if name in unconstrained
                 else [_value(r[f"{m}_mean"], True) for m, _ in metrics])  # fmt: skip
        rows.append([str(r["backbone"]), f"{name} ({_dir(d)})" if d is not None else name, grids.get(name, "—"),
                     "CCSS" if str(r["variant"]).lower() == CCSS else str(r["variant"]), str(r["n_seeds"]), *cells])  # fmt: skip
    header = ["backbone", "feature", "grid", "model", "seeds"] + [label for _, label in metrics]
    after = [_unconstrained_sentence(ctx)] if unconstrained & set(summary["feature"].astype(str)) else []
    after += edge_warnings(table, ctx.chosen_params, unconstrained)
    return Part([PER_FEATURE_INTRO], Table(header, rows), after)


#: the edge-test target when the search recorded none (``search.max_edge_violation``'s default)
EDGE_TARGET = 0.01
#: fewer training rows than this in a bucket beside an edge: too few to learn that bucket's embedding
THIN_BUCKET_ROWS = 50


def edge_warnings(
    per_feature: pd.DataFrame,
    chosen_params: Mapping[str, Mapping[str, Any]],
    skip: set[str] | frozenset[str] = frozenset(),
    log: bool = True,
) -> list[str]:
    """One sentence per (backbone, directed feature) whose CCSS edge test, mean over seeds, misses the
    target: how far, its worst edge (the seed where it was worst) and the training rows beside it — so a
    model that still jumps the wrong way across an edge is never reported silently. Tables of older runs
    (no ``worst_edge``) give none."""
    needed = {"backbone", "variant", "feature", "edge_wrong_share", "worst_edge", "worst_edge_wrong_share"}
    if per_feature is None or per_feature.empty or not needed <= set(per_feature.columns):
        return []
    ccss = per_feature[per_feature["variant"].astype(str).str.lower() == CCSS]
    out = []
    for (backbone, feature), part in ccss.groupby(["backbone", "feature"], sort=False):
        recorded = chosen_params.get(str(backbone), {}).get("max_edge_violation")
        target = EDGE_TARGET if recorded is None or _missing(recorded) else float(recorded)
        share = float(part["edge_wrong_share"].mean())
        if str(feature) in skip or not share > target:
            continue
        worst = part.iloc[int(np.nanargmax(part["worst_edge_wrong_share"].to_numpy(np.float64)))]
        rows = int(worst.get("worst_edge_train_rows", -1))
        why = (f"; only {rows} training rows sit in the thinner bucket beside it, too few to learn that bucket "
               "(more data, fewer buckets via feature_engineering.n_buckets, or a larger counterfactual_pairs."
               "anchor_share)") if 0 <= rows < THIN_BUCKET_ROWS else (f" ({rows} training rows beside it)" if rows >= 0 else "")  # fmt: skip
        out.append(
            f"Edge target missed: {backbone} CCSS moves the wrong way across an edge of {feature} on "
            f"{_value(share, True)} of rows (target ≤ {_value(target, True)}); worst edge {worst['worst_edge']}, "
            f"{_value(float(worst['worst_edge_wrong_share']), True)} of rows{why}."
        )
    for line in out if log else ():  # the report logs them; the model card repeats them silently
        logger.warning(line)
    return out


def _grid_by_feature(table: pd.DataFrame) -> dict[str, str]:
    """Which raw grid each feature was swept over (``raw_grid.grid_kind``); tables of older runs lack it."""
    if "grid" not in table.columns:
        return {}
    return {str(f): str(g) for f, g in table.groupby("feature", sort=False)["grid"].first().items()}


def _unconstrained_sentence(ctx: ReportContext) -> str:
    names = ", ".join(ctx.unconstrained)
    return (
        f"Not constrained: {names} — a directed feature with one bucket (a single training value) has no "
        "neighbouring bucket, so CCSS cannot constrain it and its monotonicity is not measurable; its rows are "
        "marked, it is left out of the bar chart and of the direction agreement, and it never counts as "
        "0 violations (see feature_engineering.n_buckets / the warning in the log)."
    )


def _parameters(ctx: ReportContext) -> Part | None:
    params = {bb: ctx.chosen_params[bb] for bb in ctx.backbones if bb in ctx.chosen_params}
    if not params:
        return None
    rows, warnings = [], []
    for bb, p in params.items():
        feasible, target = p.get("feasible"), p.get("max_violation")
        met = "n/a (defaults)" if feasible is None else "yes" if feasible else "NO — target not met"
        tau = p.get("temperature") if p.get("loss") in ("infonce", "bpr") else None
        rows.append([bb, _fmt_param(p.get("loss")), _fmt_param(p.get("weight")), _fmt_param(p.get("margin")),
                     _fmt_param(tau), _fmt_param(p.get("learning_rate")), _fmt_param(p.get("source")),
                     _value(p.get("val_auc"), False), _value(p.get("val_wrong_step_share"), True),
                     _value(p.get("val_edge_wrong_share"), True), _targets(p), met,
                     f"{p.get('study', '?')} ({p.get('n_trials', 0)} trials{_feasible_count(p)})"])  # fmt: skip
        if feasible is False:
            warnings.append(
                f"Target not met for {bb}: no trial reached a validation wrong-step share ≤ {_value(target, True)}"
                + _edge_target_clause(p)
                + f"; the chosen {p.get('source', 'trial')} is the closest: wrong-step share "
                f"{_value(p.get('val_wrong_step_share'), True)}, edge test {_value(p.get('val_edge_wrong_share'), True)}. "
                "Its CCSS models are the least violating found, not ones that meet the target."
            )
        elif feasible is None:
            warnings.append(f"{bb}: no completed search trial; CCSS used the configured defaults (no target check).")
    header = ["backbone", "loss", "λ", "margin", "τ", "learning rate", "chosen", "val AUC", "val wrong-step share",
              "val edge test", "target", "target met", "study"]  # fmt: skip
    return Part([PARAMETERS_INTRO], Table(header, rows), warnings)


def _targets(p: Mapping[str, Any]) -> str:
    """The search's targets: wrong-step share, and the edge test where it was one."""
    share, edge = p.get("max_violation"), p.get("max_edge_violation")
    if _missing(share):
        return "—"
    return f"≤ {_value(share, True)}" + ("" if _missing(edge) else f", edge ≤ {_value(edge, True)}")


def _feasible_count(p: Mapping[str, Any]) -> str:
    """ ", k met the targets" when the search counted them (older records did not)."""
    n = p.get("n_feasible")
    return "" if n is None else f", {n} met the targets"


def _edge_target_clause(p: Mapping[str, Any]) -> str:
    edge = p.get("max_edge_violation")
    return "" if _missing(edge) else f" with an edge test ≤ {_value(edge, True)}"


def _method(ctx: ReportContext) -> Part:
    m = ctx.method
    eps, levels = _float(m.get("eps", 1e-6)), m.get("grid_levels", "?")
    max_rows = m.get("max_rows")
    notes = [
        f"Raw-grid sweep (headline): each directed feature's raw value is set to G = {levels} quantile levels of its "
        f"training values (fewer for a discrete feature), each encoded by the fitted transformer as at inference, "
        f"on a seeded sample of {m.get('grid_rows', '?')} test rows. A step between consecutive grid values is wrong "
        f"when d·Δp < −ε (ε = {eps:g} on probabilities); steps inside one bucket move only the dense input, steps "
        "crossing an edge move the bucket id too. Rows monotone: share of sampled rows without a wrong step on any "
        "directed feature.",
        "Edge test: at each inner bucket boundary, the value just below it against the boundary itself — the dense "
        "input barely moves while the bucket id moves by one, so the share of rows moving the wrong way isolates "
        "the bucket embedding.",
        "Neighbour-move violation rate (secondary): each row moved to the neighbouring bucket centres, the very move "
        f"the CCSS loss trains on, so it flatters CCSS; on {'all' if max_rows is None else max_rows} test rows.",
        "Every model is scored in float32 on the test split (how the rows were split: see Splits above). Figures "
        "are mean ± standard deviation over the training seeds; the paired difference subtracts the baseline from "
        "CCSS seed by seed, with a two-sided 95% Student-t interval.",
    ]
    label, t = ctx.label_name or "label", _threshold(ctx)
    notes.append(
        f"Accuracy, precision, recall and F1 count a row as a predicted positive ({label} = 1) when its P({label}) ≥ {t:g} "
        f"(evaluation.threshold); precision, recall and F1 are 0 where undefined. The Brier score is the mean "
        f"squared difference between P({label}) and the observed {label} (lower is better)."
    )
    if any(r.recalibrated for r in ctx.results):
        notes.append(
            "Recalibration: after training, each model's logit z went through a strictly increasing map fitted on "
            "the validation split (the split early stopping used) by minimising its LogLoss — temperature scaling "
            "z / T or Platt scaling a·z + b with a > 0 (model_training.recalibration). Every figure above is of the "
            "recalibrated probability, the one the model serves (scoring, what-if, ONNX); the rows 'before "
            "recalibration' are the same model without it. The map keeps every ranking, so AUC and GAUC are "
            "unchanged, and the sign of every raw-grid step; the thresholded figures (accuracy, precision, recall, "
            f"F1 at P ≥ {t:g}) move with it."
        )
    if m.get("move"):
        notes.append(f"The CCSS models were trained on the '{m['move']}' counterfactual move.")
    return Part(notes)


def _intro(ctx: ReportContext) -> Part:
    """Source, splits, label, directed features and backbones: what the report is about."""
    before = [f"Source: {ctx.source or 'n/a'}"] + ([f"Splits: {ctx.split_note}"] if ctx.split_note else [])
    splits = Table(["split", "rows"], [[k, f"{int(v):,}"] for k, v in ctx.rows_per_split.items()])
    label, unconstrained = ctx.label_name or "label", set(ctx.unconstrained)
    directed = ", ".join(f"{n} ({_dir(d)}{', ' + ONE_BUCKET_NOTE if n in unconstrained else ''})"
                         for n, d in ctx.directed_features.items())  # fmt: skip
    after = [
        f"Label: {label} — every model predicts P({label}).",
        f"Directed features ({len(ctx.directed_features)}): {directed or 'none'}",
        f"Backbones: {', '.join(ctx.backbones) if ctx.backbones else 'n/a'}",
    ]
    return Part(before, splits if ctx.rows_per_split else None, after)


def plot_figure(plot: PlotRef) -> Figure:
    """The view of a plot: its path, caption and, where it has bytes, their data URI."""
    return Figure(plot.path, plot.caption, png_data_uri(plot.png) if plot.png else None)


def _figure_groups(plots: Sequence[PlotRef]) -> list[dict[str, Any]]:
    """Consecutive plots of one section, under the section's heading (none for the section "Figures")."""
    groups: list[dict[str, Any]] = []
    for p in plots:
        if not groups or groups[-1]["section"] != p.section:
            groups.append({"section": p.section, "heading": None if p.section == "Figures" else p.section,
                           "figures": []})  # fmt: skip
        groups[-1]["figures"].append(plot_figure(p))
    return groups


def _view(ctx: ReportContext) -> dict[str, Any]:
    """Everything the report templates show, in document order."""
    return {
        "title": ctx.title,
        "intro": _intro(ctx),
        "headline_intro": Part(
            [HEADLINE_INTRO, recalibration_sentence(ctx.results, ctx.backbones)]
            + ([ctx.gauc_note] if ctx.gauc_note else [])
        ),
        "headline": [_headline(ctx, bb) for bb in ctx.backbones],
        "per_feature": _per_feature(ctx),
        "parameters": _parameters(ctx),
        "method": _method(ctx),
        "notes": Part(list(ctx.notes)) if ctx.notes else None,
        "figures": _figure_groups(ctx.plots),
    }


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes (refuses bytes that are not a PNG)."""
    if not bytes(png).startswith(PNG_SIGNATURE):
        raise ValueError("image bytes are not a PNG")
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


def render_report(context: ReportContext | Mapping[str, Any]) -> tuple[str, str]:
    """Render ``(markdown, html)``. The Markdown links images by ``PlotRef.path`` (relative to the
    directory the two files are written to); the HTML embeds each ``PlotRef.png`` as a data URI and
    names, without linking, a plot that has no bytes."""
    ctx = context if isinstance(context, ReportContext) else ReportContext(**context)
    return render("report", _view(ctx))
