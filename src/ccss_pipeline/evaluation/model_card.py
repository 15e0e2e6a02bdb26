"""The model card: what each chosen CCSS model is for, what it guarantees, how it did, how to rebuild it.

:func:`render_model_card` turns a :class:`ModelCardContext` into ``(markdown, html)``: this module
builds the sentences and tables (the view), the Jinja2 templates ``templates/model_card.md.j2`` and
``model_card.html.j2`` lay them out with the report's macros and page (:mod:`.render`), so the card looks
like the report and its HTML is self-contained in the same way: every figure with bytes is a PNG data URI, a
figure without bytes is named, never linked; the Markdown links figures by their path relative to the
card's folder.

One card covers every backbone: common sections (intended use and limits, training data, features and
directions), then one section per backbone for its chosen model — the CCSS model trained with that
backbone's chosen λ and margin, over the training seeds — with its accuracy and monotonicity against
its baseline, the paired ΔAUC, the raw-grid ICE figures and the chosen hyper-parameters; then the
lineage (:mod:`.card_lineage`: git commit, the DVC md5 of the data and model artifacts, the Kedro
environment, a hash of all parameters) and the commands that rebuild it.

Kedro-free: the catalog dataset :class:`ccss_pipeline.datasets.ProjectLineageDataset` reads git and
``dvc.lock``; :func:`.documents.card_context` builds the context from the evaluation's findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ccss_pipeline.config import SplitConfig
from ccss_pipeline.data.splitting import split_sentence
from ccss_pipeline.evaluation.card_lineage import UNKNOWN, Lineage, data_hashes, lineage_view
from ccss_pipeline.evaluation.findings import (
    ModelResult,
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
    PlotRef,
    fmt_diff,
    fmt_direction,
    fmt_interval,
    fmt_mean_std,
    fmt_param,
    fmt_value,
    is_missing,
    metric_label,
    plot_figure,
)
from ccss_pipeline.evaluation.render import Part, Table, render
from ccss_pipeline.evaluation.seeds import summarize_over_seeds
from ccss_pipeline.spec import FeatureSpec, NumericalFeature

#: Metrics of the per-backbone accuracy and monotonicity table, in order (shown where present).
CARD_METRICS = ["auc", "gauc", "logloss", "logloss_uncalibrated", "accuracy", "precision", "recall", "f1", "brier",
                "brier_uncalibrated", "recalibration_temperature", "recalibration_shift", "wrong_step_share",
                "max_feature_wrong_step_share", "edge_wrong_share", "monotone_row_share"]  # fmt: skip


# ------------------------------------------------------------------------------------------ context


@dataclass
class ModelCardContext:
    """Everything the card shows.

    - ``spec``: the fitted feature spec (source, label name, features, directions, buckets, the training
      quantiles that bound the raw grid);
    - ``backbones``: in display order; ``results``: one :class:`.findings.ModelResult` per (backbone,
      variant) from ``seed_summary``; ``paired``: CCSS − baseline per backbone and metric
      (``paired_differences``); ``per_feature``: raw-grid per-feature rows (backbone, variant, seed,
      feature, ``wrong_step_share``, ``edge_wrong_share``, ...);
    - ``chosen_params``: backbone → ``best_params`` entry;
    - ``split`` (``feature_engineering.split``: its mode words the split sentence, the report's too),
      ``time_ranges`` (split → first, last event; empty without a timestamp), ``rows_per_split``;
    - ``method``: grid_levels, grid_rows, eps, threshold of the evaluation;
    - ``plots``: the raw-grid ICE figures, ``PlotRef.section`` = the backbone;
    - ``lineage``: :class:`Lineage`; ``gauc_note``: replaces GAUC when it cannot be measured.
    """

    spec: FeatureSpec
    backbones: list[str]
    results: list[ModelResult]
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_feature: pd.DataFrame = field(default_factory=pd.DataFrame)
    chosen_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    time_ranges: dict[str, tuple[str, str]] = field(default_factory=dict)
    rows_per_split: dict[str, int] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)
    plots: list[PlotRef] = field(default_factory=list)
    lineage: Lineage = field(default_factory=Lineage)
    gauc_note: str = ""

    @property
    def label(self) -> str:
        return str(self.spec.label_name or "label")

    @property
    def source(self) -> str:
        return str(self.spec.source or UNKNOWN)

    @property
    def unconstrained(self) -> list[str]:
        """Directed features with one bucket: CCSS cannot constrain them."""
        return [f.name for f in self.spec.directed if f.n_buckets < 2]

    @property
    def title(self) -> str:
        return f"Model card — CCSS models on {self.source}"


# ------------------------------------------------------------------------------------------- view
# What the templates lay out (templates/model_card.md.j2, model_card.html.j2): every sentence and cell is
# built here, so the Markdown and the HTML say the same; the templates only place and format it.


def _threshold(ctx: ModelCardContext) -> float:
    t = ctx.method.get("threshold", 0.5)
    return 0.5 if is_missing(t) else float(t)


def _metric_label(metric: str, ctx: ModelCardContext) -> str:
    return metric_label(metric, _threshold(ctx))


def _raw(v: Any) -> str:
    return "n/a" if is_missing(v) else f"{float(v):.6g}"


def _training_range(feature: NumericalFeature) -> tuple[Any, Any]:
    values = feature.quantiles or feature.centres
    return (values[0], values[-1]) if values else (None, None)


def _split_text(ctx: ModelCardContext, ranges: bool = True) -> str:
    text = f"Split mode: {ctx.split.mode} — {split_sentence(ctx.split)}."
    if not ranges:
        return text
    if ctx.time_ranges:
        spans = "; ".join(f"{s} {a} → {b}" for s, (a, b) in ctx.time_ranges.items())
        text += f" Time range (UTC): {spans}."
    else:
        text += " The data has no timestamp, so no time range is stated."
    return text


def _limits(ctx: ModelCardContext) -> list[str]:
    """The bullets of "Intended use and limits": what the models are for, what CCSS gives and does not."""
    label, m = ctx.label, ctx.method
    eps = m.get("eps", 1e-6)
    test_end = ctx.time_ranges.get("test", (None, None))[1]
    return [
        f"Use: scoring P({label} = 1) for rows of the {ctx.source} data, described by the features below and "
        f"encoded by the fitted feature spec, where the prediction should move in each directed feature's declared "
        "direction. The label is '" + label + "'.",
        "What CCSS gives: each CCSS model was trained with a contrastive loss that pushes its output to move in the "
        "declared direction of every directed feature, and this was measured on the raw-value grid — each "
        f"directed feature's raw value swept over {m.get('grid_levels', '?')} quantile levels of its training "
        f"values (from its training minimum to its maximum) on {m.get('grid_rows', '?')} test rows, encoded as at "
        f"inference; a step is wrong when P({label}) moves against the declared direction by more than "
        f"{float(eps):g}. The per-feature figures of each backbone's section are the measured result.",
        "What it does not give: monotonicity outside a feature's training range (below its training minimum or "
        "above its maximum the model extrapolates and nothing was measured); a guarantee for every row — a small "
        "wrong-step share is a measured rate on sampled test rows, not a proof; any direction for features "
        "without a declared direction; any constraint for a directed feature with one bucket (marked "
        f"'{ONE_BUCKET_NOTE}'); monotonicity when several features move at once.",
        _split_text(ctx)
        + (
            f" The accuracy figures hold for data like the test split; events after {test_end} were not seen."
            if test_end
            else ""
        ),  # fmt: skip
    ]


def _training_ranges(ctx: ModelCardContext) -> Part | None:
    """The raw range each constrained feature was measured over; None without such a feature."""
    directed = [f for f in ctx.spec.directed if f.n_buckets >= 2]
    if not directed:
        return None
    rows = [
        [f.name, fmt_direction(f.direction), _raw(_training_range(f)[0]), _raw(_training_range(f)[1])] for f in directed
    ]
    return Part(["Training range of each constrained feature — the range over which monotonicity was measured "
                 "(raw units):"],
                Table(["feature", "direction", "training minimum", "training maximum"], rows))  # fmt: skip


def _training_data(ctx: ModelCardContext) -> Part:
    """Source and label, rows (and time range) per split, and the split mode."""
    splits = list(dict.fromkeys([*ctx.rows_per_split, *ctx.time_ranges]))
    table = None
    if splits:
        header = ["split", "rows"] + (["first event (UTC)", "last event (UTC)"] if ctx.time_ranges else [])
        rows = []
        for s in splits:
            n = ctx.rows_per_split.get(s)
            row = [s, "n/a" if n is None else f"{int(n):,}"]
            if ctx.time_ranges:
                row += list(ctx.time_ranges.get(s, ("n/a", "n/a")))
            rows.append(row)
        table = Table(header, rows)
    # the table gives the ranges
    return Part([f"Source: {ctx.source}. Label: {ctx.label}."], table, [_split_text(ctx, ranges=not ctx.time_ranges)])


def _features(ctx: ModelCardContext) -> Part:
    spec, unconstrained = ctx.spec, set(ctx.unconstrained)
    rows = []
    for f in spec.directed:
        constrained = f"no — {ONE_BUCKET_NOTE}" if f.name in unconstrained else "yes"
        rows.append([f.name, fmt_direction(f.direction), str(f.n_buckets), f.transform, constrained])
    notes = []
    if unconstrained:
        notes.append(f"Not constrained: {', '.join(ctx.unconstrained)} — a directed feature with one bucket has no "
                     "neighbouring bucket, so CCSS cannot constrain it and its monotonicity is not measured.")  # fmt: skip
    free = [f.name for f in spec.numerical if f.direction == 0]
    if free:
        notes.append(f"Numerical features without a declared direction (no constraint): {', '.join(free)}.")
    if spec.categorical:
        notes.append(f"Categorical features (no direction): {', '.join(c.name for c in spec.categorical)}.")
    if not rows:
        return Part(["No directed feature: CCSS constrains nothing, the CCSS models equal their baselines in kind."],
                    None, notes)  # fmt: skip
    header = ["feature", "declared direction", "buckets", "transform", "constrained by CCSS"]
    return Part([f"Directed features ({len(rows)}): +1 means P({ctx.label}) should not fall when the value "
                 "rises, -1 that it should not rise."], Table(header, rows), notes)  # fmt: skip


def _paired_row(ctx: ModelCardContext, backbone: str, metric: str) -> dict[str, Any] | None:
    paired = ctx.paired
    if paired is None or paired.empty or not {"backbone", "metric"} <= set(paired.columns):
        return None
    part = paired[(paired["backbone"].astype(str) == backbone) & (paired["metric"].astype(str) == metric)]
    return {str(k): v for k, v in part.iloc[0].to_dict().items()} if len(part) else None


def _per_feature_rows(ctx: ModelCardContext, backbone: str) -> list[list[str]]:
    table = ctx.per_feature
    if table is None or table.empty or not {"backbone", "variant", "feature"} <= set(table.columns):
        return []
    metrics = [m for m in ("wrong_step_share", "edge_wrong_share") if m in table.columns]
    part = table[table["backbone"].astype(str) == backbone]
    if part.empty or not metrics:
        return []
    summary = summarize_over_seeds(part, ["variant", "feature"], metrics)
    cell = {(str(r["variant"]).lower(), str(r["feature"])): r for r in summary.to_dict("records")}
    rows, unconstrained = [], set(ctx.unconstrained)
    for f in ctx.spec.directed:
        name = f"{f.name} ({fmt_direction(f.direction)})"
        if f.name in unconstrained:
            rows.append([name, ONE_BUCKET_NOTE, "—", "—", "—"])
            continue
        values = []
        for variant in (CCSS, BASELINE):
            for m in ("wrong_step_share", "edge_wrong_share"):
                r = cell.get((variant, f.name))
                values.append(
                    "n/a" if r is None or m not in metrics else fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], True)
                )
        rows.append([name, *values])
    return rows


def _accuracy(ctx: ModelCardContext, bb: str, ccss: ModelResult | None, base: ModelResult | None) -> Part:
    """The CCSS model against its baseline on the test split, then the paired ΔAUC and, for a model whose
    best epoch was its last allowed one, that it is likely undertrained."""
    auc = _paired_row(ctx, bb, "auc")
    if auc is not None and int(auc.get("n") or 0):
        delta = (f"ΔAUC (CCSS − baseline, paired on the training seed, {int(auc['n'])} pairs): "
                 f"{fmt_diff(auc.get('mean'), False)}, 95% interval {fmt_interval(auc, False)}.")  # fmt: skip
    else:
        delta = "ΔAUC (CCSS − baseline, paired on the training seed): n/a — no paired seeds."
    if ccss is None:
        return Part(["No CCSS model of this backbone was evaluated."], None, [delta])
    shown = [r for r in (ccss, base) if r is not None]
    hidden = ({"gauc"} if ctx.gauc_note else set()) | hidden_recalibration_rows(shown)
    metrics = [m for m in CARD_METRICS if m not in hidden and any(not is_missing(r.mean.get(m)) for r in shown)]
    header = ["metric"] + [seeds_header(r) for r in shown]
    table = Table(header, [[_metric_label(m, ctx)] + [r.cell(m) for r in shown] for m in metrics])
    notes = ([ctx.gauc_note] if ctx.gauc_note else []) + [delta] + epoch_limit_warnings(shown, [bb])
    return Part(["Mean ± standard deviation over the training seeds."], table, notes)


def _backbone(ctx: ModelCardContext, bb: str) -> dict[str, Any]:
    """One backbone's section: its chosen model, how it did, its ICE figures and its parameters."""
    models = {r.variant.lower(): r for r in ctx.results if r.backbone == bb}
    ccss, base = models.get(CCSS), models.get(BASELINE)
    params = ctx.chosen_params.get(bb) or {}
    n = ccss.n_seeds if ccss else 0
    rows = _per_feature_rows(ctx, bb)
    table = ctx.per_feature
    mine = table[table["backbone"].astype(str) == bb] if table is not None and "backbone" in table.columns else table
    per_feature = Part(["Per directed feature, on the raw-value grid over the training range (mean ± std over seeds):"],
                       Table(["feature", "CCSS wrong-step share", "CCSS edge test wrong", "baseline wrong-step share",
                              "baseline edge test wrong"], rows),
                       edge_warnings(mine, ctx.chosen_params, set(ctx.unconstrained), log=False))  # fmt: skip
    return {
        "name": bb,
        "chosen": f"The chosen model: {bb} trained with {_method_phrase(params)}, "
                  f"over {n} training seed{'s' if n != 1 else ''}; its baseline is "
                  "the same backbone, budget and seeds with λ = 0. "
                  + recalibration_sentence([r for r in (ccss, base) if r is not None], [bb]),
        "accuracy": _accuracy(ctx, bb, ccss, base),
        "per_feature": per_feature if rows else None,
        "figures": [plot_figure(p) for p in ctx.plots if p.section == bb],
        "parameters": _chosen(params),
    }  # fmt: skip


#: how the card names each monotonicity method (``model_training.method``)
_METHOD_NAMES = {"ccss": "CCSS", "pwl": "the point-wise gradient penalty (pwl)", "hints": "monotonicity hints"}


def _method_phrase(p: Mapping[str, Any]) -> str:
    """How the chosen model was trained: CCSS at λ and margin (a best_params entry written before methods
    existed is CCSS's); another method has no margin, and its own searched parameters follow λ."""
    method = str(p.get("method") or "ccss")
    phrase = f"{_METHOD_NAMES.get(method, method)} at λ = {fmt_param(p.get('weight'))}"
    if method == "ccss":
        return f"{phrase}, margin {fmt_param(p.get('margin'))}"
    own = p.get("method_params") or {}
    return phrase + "".join(f", {k} {fmt_param(v)}" for k, v in sorted(own.items()))


def _chosen(p: Mapping[str, Any]) -> Part:
    if not p:
        return Part(["No chosen parameters were recorded for this backbone (best_params has no entry)."])
    feasible, target = p.get("feasible"), p.get("max_violation")
    met = ("n/a — no completed search trial, the configured defaults" if feasible is None else
           "yes" if feasible else "NO — no trial met the target; the least violating one was chosen")  # fmt: skip
    rows = [
        ["method", fmt_param(p.get("method") or "ccss")],
        *[[name, fmt_param(value)] for name, value in sorted((p.get("method_params") or {}).items())],
        ["λ (contrastive weight)", fmt_param(p.get("weight"))],
        ["margin", fmt_param(p.get("margin"))],
        ["loss", fmt_param(p.get("loss"))],
        ["source trial", fmt_param(p.get("source"))],
        ["validation AUC", fmt_value(p.get("val_auc"), False)],
        ["validation raw-grid wrong-step share", fmt_value(p.get("val_wrong_step_share"), True)],
        ["validation edge test wrong", fmt_value(p.get("val_edge_wrong_share"), True)],
        ["target (wrong-step share)", "—" if is_missing(target) else f"≤ {fmt_value(target, True)}"],
        [
            "target (edge test)",
            "—" if is_missing(p.get("max_edge_violation")) else f"≤ {fmt_value(p.get('max_edge_violation'), True)}",
        ],
        ["feasible (target met)", met],
        ["study", f"{p.get('study', '?')} ({p.get('n_trials', 0)} trials)"],
    ]
    return Part(table=Table(["parameter", "value"], rows))


def _view(ctx: ModelCardContext) -> dict[str, Any]:
    """Everything the card templates show, in document order."""
    names = ", ".join(ctx.backbones) or "none"
    return {
        "title": ctx.title,
        "intro": f"One card for the chosen model of each backbone ({names}): the CCSS model trained with the "
                 f"backbone's chosen λ and margin, compared with its baseline. Every model predicts P({ctx.label}).",
        "limits": _limits(ctx),
        "training_ranges": _training_ranges(ctx),
        "training_data": _training_data(ctx),
        "data_hashes": data_hashes(ctx.lineage),
        "features": _features(ctx),
        "backbones": [_backbone(ctx, bb) for bb in ctx.backbones],
        "lineage": lineage_view(ctx.lineage),
    }  # fmt: skip


def render_model_card(ctx: ModelCardContext) -> tuple[str, str]:
    """``(markdown, html)`` of the card; the HTML embeds each figure with bytes as a data URI."""
    return render("model_card", _view(ctx))
