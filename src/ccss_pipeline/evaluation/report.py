"""The human-readable evaluation report: one Markdown and one HTML document with the same content.

:func:`render_report` turns a :class:`ReportContext` into ``(markdown, html)``: this module builds every
sentence and table cell (the view), the Jinja2 templates ``templates/report.md.j2`` and
``report.html.j2`` lay them out (:mod:`.render`), so the two documents say the same. The context holds
the seed-aggregated tables of the evaluation stage: ``ModelResult.from_summary(seed_summary)``
(mean ± std per backbone and variant), the paired CCSS − baseline differences, the raw-grid
per-feature table, the chosen parameters per backbone, the method parameters and the plots: their
paths (relative to the directory the two files are written to) and, where given, their PNG bytes.
:func:`.documents.report_context` builds it from the evaluation's findings and figures.

The Markdown links each image by its relative path; the HTML embeds each image that has bytes as a
``data:image/png;base64`` URI, so the page is self-contained (it survives being mailed or moved). A
plot without bytes is named in the HTML, not linked.

Nothing assumes what the label means: the text names it through ``ReportContext.label_name``.

Variants match case-insensitively: ``"baseline"`` and ``"ccss"`` drive the verdicts (:mod:`.verdicts`);
any other variant (a related method) only appears in the tables. Every sentence is built from the
numbers (formatted by :mod:`.presentation`); a missing value renders as "n/a".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ccss_pipeline.evaluation.findings import (
    ModelResult,
    by_variant,
    edge_warnings,
    epoch_limit_warnings,
    hidden_recalibration_rows,
    recalibration_sentence,
    seeds_header,
)
from ccss_pipeline.evaluation.plots import ONE_BUCKET_NOTE
from ccss_pipeline.evaluation.presentation import (
    BASELINE,
    CCSS,
    HEADLINE,
    SHARE_METRICS,
    PlotRef,
    as_float,
    fmt_diff,
    fmt_direction,
    fmt_interval,
    fmt_param,
    fmt_value,
    is_missing,
    metric_label,
    pct_digits,
    plot_figure,
    variant_rank,
)
from ccss_pipeline.evaluation.render import Part, Table, render
from ccss_pipeline.evaluation.seeds import summarize_over_seeds
from ccss_pipeline.evaluation.verdicts import verdict

#: Metrics of the paired CCSS − baseline table, in order.
PAIRED = ["auc", "gauc", "logloss", "logloss_uncalibrated", "accuracy", "precision", "recall", "f1", "brier",
          "brier_uncalibrated", "wrong_step_share", "wrong_step_share_inside", "wrong_step_share_crossing",
          "edge_wrong_share", "monotone_row_share"]  # fmt: skip
#: Per-feature raw-grid columns (means over seeds); the last is the secondary bucket-centre rate.
FEATURE_COLUMNS = [
    ("wrong_step_share", "wrong-step share"), ("wrong_step_share_inside", "inside a bucket"),
    ("wrong_step_share_crossing", "crossing an edge"), ("edge_wrong_share", "edge test wrong"),
    ("monotone_row_share", "rows monotone"), ("neighbour_violation_rate", "neighbour-move rate (secondary)"),
]  # fmt: skip


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


def _threshold(ctx: ReportContext) -> float:
    t = as_float(ctx.method.get("threshold", 0.5))
    return 0.5 if is_missing(t) else t


def _label(metric: str, ctx: ReportContext) -> str:
    return metric_label(metric, _threshold(ctx))


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


def _find(results: Sequence[ModelResult], backbone: str, variant: str) -> ModelResult | None:
    return next((r for r in results if r.backbone == backbone and r.variant.lower() == variant), None)


def _paired_for(ctx: ReportContext, backbone: str) -> dict[str, dict[str, Any]]:
    if ctx.paired is None or ctx.paired.empty:
        return {}
    part = ctx.paired[ctx.paired["backbone"].astype(str) == backbone]
    return {str(r["metric"]): {str(k): v for k, v in r.items()} for r in part.to_dict("records")}


def _paired_table(ctx: ReportContext, paired: Mapping[str, Mapping[str, Any]], hidden: set[str]) -> Table | None:
    """CCSS − baseline per metric with its interval; None when no metric has a paired seed."""
    rows = []
    for m in PAIRED:
        row = paired.get(m)
        if m in hidden or row is None or not int(row.get("n") or 0):
            continue
        share = m in SHARE_METRICS
        rows.append([_label(m, ctx), str(int(row["n"])), fmt_diff(row["mean"], share, pct_digits(row["mean"])),
                     fmt_interval(row, share)])  # fmt: skip
    return Table(["metric", "pairs", "mean difference", "95% interval"], rows) if rows else None


def _headline(ctx: ReportContext, bb: str) -> dict[str, Any]:
    """One backbone's results table, its paired differences and the verdict."""
    models = by_variant([r for r in ctx.results if r.backbone == bb])
    if not models:
        return {"name": bb, "parts": [Part([NO_MODEL])]}
    hidden = ({"gauc"} if ctx.gauc_note else set()) | hidden_recalibration_rows(models)
    metrics = [m for m, _, _ in HEADLINE if m not in hidden and any(not is_missing(r.mean.get(m)) for r in models)]
    results = Table(["metric"] + [seeds_header(r) for r in models],
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
        _v=summary["variant"].map(variant_rank),
    ).sort_values(["_b", "_f", "_v", "variant"])
    grids = _grid_by_feature(table)
    rows = []
    unconstrained = set(ctx.unconstrained)
    for r in summary.to_dict("records"):
        name = str(r["feature"])
        d = ctx.directed_features.get(name)
        cells = (([ONE_BUCKET_NOTE] + ["—"] * len(metrics))[: len(metrics)] if name in unconstrained
                 else [fmt_value(r[f"{m}_mean"], True) for m, _ in metrics])  # fmt: skip
        rows.append([str(r["backbone"]), f"{name} ({fmt_direction(d)})" if d is not None else name, grids.get(name, "—"),
                     "CCSS" if str(r["variant"]).lower() == CCSS else str(r["variant"]), str(r["n_seeds"]), *cells])  # fmt: skip
    header = ["backbone", "feature", "grid", "model", "seeds"] + [label for _, label in metrics]
    after = [_unconstrained_sentence(ctx)] if unconstrained & set(summary["feature"].astype(str)) else []
    after += edge_warnings(table, ctx.chosen_params, unconstrained)
    return Part([PER_FEATURE_INTRO], Table(header, rows), after)


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
        rows.append([bb, fmt_param(p.get("loss")), fmt_param(p.get("weight")), fmt_param(p.get("margin")),
                     fmt_param(tau), fmt_param(p.get("learning_rate")), fmt_param(p.get("source")),
                     fmt_value(p.get("val_auc"), False), fmt_value(p.get("val_wrong_step_share"), True),
                     fmt_value(p.get("val_edge_wrong_share"), True), _targets(p), met,
                     f"{p.get('study', '?')} ({p.get('n_trials', 0)} trials{_feasible_count(p)})"])  # fmt: skip
        if feasible is False:
            warnings.append(
                f"Target not met for {bb}: no trial reached a validation wrong-step share ≤ {fmt_value(target, True)}"
                + _edge_target_clause(p)
                + f"; the chosen {p.get('source', 'trial')} is the closest: wrong-step share "
                f"{fmt_value(p.get('val_wrong_step_share'), True)}, edge test {fmt_value(p.get('val_edge_wrong_share'), True)}. "
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
    if is_missing(share):
        return "—"
    return f"≤ {fmt_value(share, True)}" + ("" if is_missing(edge) else f", edge ≤ {fmt_value(edge, True)}")


def _feasible_count(p: Mapping[str, Any]) -> str:
    """ ", k met the targets" when the search counted them (older records did not)."""
    n = p.get("n_feasible")
    return "" if n is None else f", {n} met the targets"


def _edge_target_clause(p: Mapping[str, Any]) -> str:
    edge = p.get("max_edge_violation")
    return "" if is_missing(edge) else f" with an edge test ≤ {fmt_value(edge, True)}"


def _method(ctx: ReportContext) -> Part:
    m = ctx.method
    eps, levels = as_float(m.get("eps", 1e-6)), m.get("grid_levels", "?")
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
        "Other ways to keep the declared directions — the point-wise gradient penalty, monotonicity hints, a "
        "Lipschitz monotonic network and LightGBM with monotone constraints — are run under this protocol by "
        '`kedro run --pipelines=compare`, which writes the "Methods compared" section (the table and its plain '
        "reading) to methods_compared.md beside this report: a pipeline of its own, so this report does not wait "
        "for it.",
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
    directed = ", ".join(f"{n} ({fmt_direction(d)}{', ' + ONE_BUCKET_NOTE if n in unconstrained else ''})"
                         for n, d in ctx.directed_features.items())  # fmt: skip
    after = [
        f"Label: {label} — every model predicts P({label}).",
        f"Directed features ({len(ctx.directed_features)}): {directed or 'none'}",
        f"Backbones: {', '.join(ctx.backbones) if ctx.backbones else 'n/a'}",
    ]
    return Part(before, splits if ctx.rows_per_split else None, after)


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


def render_report(context: ReportContext | Mapping[str, Any]) -> tuple[str, str]:
    """Render ``(markdown, html)``. The Markdown links images by ``PlotRef.path`` (relative to the
    directory the two files are written to); the HTML embeds each ``PlotRef.png`` as a data URI and
    names, without linking, a plot that has no bytes."""
    ctx = context if isinstance(context, ReportContext) else ReportContext(**context)
    return render("report", _view(ctx))
