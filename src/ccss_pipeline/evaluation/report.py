"""The human-readable evaluation report: one Markdown and one HTML document with the same content.

The lead fills a :class:`ReportContext` from the pipeline outputs and calls :func:`render_report`::

    ctx = ReportContext(
        title="CCSS evaluation — synthetic",
        source="synthetic generator v1 (seed 0)",
        rows_per_split={"train": 800_000, "valid": 100_000, "test": 100_000},
        directed_features={"video_hist_ctr": +1, "days_since_upload": -1},
        backbones=["dnn", "dcn"],
        results=[
            ModelResult.from_outputs("dnn", "baseline", acc_metrics, mono_result),
            ModelResult.from_outputs("dnn", "ccss", acc_metrics2, mono_result2),
            ...
        ],
        chosen_params={"*": {"lambda": 0.5, "margin": 0.01, "loss": "hinge", "tau": 0.1}},
        plots=[PlotRef("plots/pd_video_hist_ctr_dnn.png", "PD of video_hist_ctr, dnn"), ...],
    )
    markdown, html_text = render_report(ctx)   # write both into the same directory as the plot paths' root

Variants are matched case-insensitively: ``"baseline"`` and ``"ccss"`` drive the verdicts; any other
variant (a related method) only appears in the tables. All numbers are read from the dicts/tables of
:mod:`.accuracy` and :mod:`.monotonicity`; a missing value renders as "n/a".
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from ccss_pipeline.evaluation.monotonicity import MonotonicityResult

BASELINE = "baseline"
CCSS = "ccss"
_PARAM_NAMES = {"lambda": "λ", "lam": "λ", "margin": "margin", "loss": "loss", "tau": "τ"}


@dataclass
class ModelResult:
    """One trained model's metrics on the test split.

    ``backbone``: e.g. "dnn"; ``variant``: "baseline", "ccss" or another method's name;
    ``accuracy``: the dict of :func:`.accuracy.accuracy_metrics` (keys auc, gauc, logloss, optionally
    oracle_auc); ``pooled``: ``MonotonicityResult.pooled`` (violation_rate, compliance,
    ice_monotone_share, rows_with_violation, pd_direction_ok_share); ``per_feature``:
    ``MonotonicityResult.per_feature`` (feature, direction, compliance, ice_monotone_share, ...);
    ``direction_agreement``: share of features whose PD trend matches a synthetic generator's true
    direction (``true_direction_agreement(...)["agrees"].mean()``), None on real data;
    ``label``: display name (default "<variant>").
    """

    backbone: str
    variant: str
    accuracy: dict[str, Any]
    pooled: dict[str, Any]
    per_feature: pd.DataFrame
    direction_agreement: float | None = None
    label: str | None = None

    @classmethod
    def from_outputs(
        cls,
        backbone: str,
        variant: str,
        accuracy: Mapping[str, Any],
        monotonicity: MonotonicityResult,
        direction_agreement: float | None = None,
        label: str | None = None,
    ) -> ModelResult:
        return cls(
            backbone=backbone,
            variant=variant,
            accuracy=dict(accuracy),
            pooled=dict(monotonicity.pooled),
            per_feature=monotonicity.per_feature,
            direction_agreement=direction_agreement,
            label=label,
        )

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        return "CCSS" if self.variant.lower() == CCSS else self.variant


@dataclass
class PlotRef:
    """A figure file, ``path`` relative to the report's directory (e.g. "plots/roc_dnn.png")."""

    path: str
    caption: str


@dataclass
class ReportContext:
    """Everything the report shows.

    - ``title``: the H1;
    - ``source``: what data (dataset name / generator and seed), free text;
    - ``rows_per_split``: split name → row count, in display order;
    - ``directed_features``: feature name → direction (+1 / −1), in display order;
    - ``backbones``: backbone names in display order;
    - ``results``: one :class:`ModelResult` per (backbone, variant);
    - ``chosen_params``: backbone → chosen CCSS hyper-parameters (keys such as "lambda", "margin",
      "loss", "tau"; any other key is shown as is); the key "*" applies to every backbone;
    - ``plots``: :class:`PlotRef` list, shown in order at the end;
    - ``split_note``: how the splits were made (e.g. "time-ordered: test is the last 10% of days");
    - ``notes``: extra paragraphs shown before the plots;
    - ``eps``: the ε of the violation test (shown in the definitions).
    """

    title: str
    source: str
    rows_per_split: dict[str, int]
    directed_features: dict[str, int]
    backbones: list[str]
    results: list[ModelResult]
    chosen_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    plots: list[PlotRef] = field(default_factory=list)
    split_note: str = ""
    notes: list[str] = field(default_factory=list)
    eps: float = 1e-6

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportContext:
        """Build from a plain dict (results / plots may be dicts too)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise KeyError(f"unknown report context keys: {sorted(unknown)}")
        kwargs = dict(data)
        kwargs["results"] = [
            r if isinstance(r, ModelResult) else ModelResult(**{**r, "per_feature": pd.DataFrame(r["per_feature"])})
            for r in data.get("results", [])
        ]
        kwargs["plots"] = [
            p if isinstance(p, PlotRef) else PlotRef(**p) if isinstance(p, Mapping) else PlotRef(*p)
            for p in data.get("plots", [])
        ]
        return cls(**kwargs)


# ----------------------------------------------------------------------------------------- format


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v: Any, digits: int = 4) -> str:
    return "n/a" if _missing(v) else f"{float(v):.{digits}f}"


def _pct(v: Any, digits: int = 1) -> str:
    return "n/a" if _missing(v) else f"{100 * float(v):.{digits}f}%"


def _dir(d: int) -> str:
    return f"{int(d):+d}"


def verdict_sentence(feature: str, direction: int, ccss_compliance: Any, baseline_compliance: Any) -> str:
    """E.g. ``video_hist_ctr (+1): monotone in 99.8% of neighbour moves with CCSS, baseline 71.2%``."""
    return (
        f"{feature} ({_dir(direction)}): monotone in {_pct(ccss_compliance)} of neighbour moves with CCSS, "
        f"baseline {_pct(baseline_compliance)}"
    )


# ------------------------------------------------------------------------------- document blocks
# A block is a tuple: ("h", level, text) | ("p", text) | ("ul", [text]) | ("table", header, rows)
# | ("img", path, caption). Both renderers walk the same list, so the two documents agree.


def _find(results: Sequence[ModelResult], backbone: str, variant: str) -> ModelResult | None:
    for r in results:
        if r.backbone == backbone and r.variant.lower() == variant:
            return r
    return None


def _compliance_of(result: ModelResult | None, feature: str) -> Any:
    if result is None or result.per_feature is None or result.per_feature.empty:
        return None
    sub = result.per_feature[result.per_feature["feature"] == feature]
    return None if sub.empty else sub["compliance"].iloc[0]


def _ordered_results(ctx: ReportContext) -> list[ModelResult]:
    order = {b: i for i, b in enumerate(ctx.backbones)}

    def key(r: ModelResult) -> tuple[int, int]:
        v = r.variant.lower()
        return (order.get(r.backbone, len(order)), 0 if v == BASELINE else 1 if v == CCSS else 2)

    return sorted(ctx.results, key=key)


def _params_for(ctx: ReportContext, backbone: str) -> dict[str, Any]:
    return {**ctx.chosen_params.get("*", {}), **ctx.chosen_params.get(backbone, {})}


def _blocks(ctx: ReportContext) -> list[tuple]:
    b: list[tuple] = [("h", 1, ctx.title)]
    results = _ordered_results(ctx)
    has_oracle = any("oracle_auc" in r.accuracy for r in results)
    has_agreement = any(r.direction_agreement is not None for r in results)

    # summary first: what a reader wants to know
    summary = []
    for bb in ctx.backbones:
        base, ccss = _find(results, bb, BASELINE), _find(results, bb, CCSS)
        if base is None or ccss is None:
            continue
        d_auc = (
            None
            if _missing(ccss.accuracy.get("auc")) or _missing(base.accuracy.get("auc"))
            else ccss.accuracy["auc"] - base.accuracy["auc"]
        )
        summary.append(
            f"{bb}: neighbour-move compliance {_pct(ccss.pooled.get('compliance'))} with CCSS vs "
            f"{_pct(base.pooled.get('compliance'))} baseline; AUC {_num(ccss.accuracy.get('auc'))} vs "
            f"{_num(base.accuracy.get('auc'))} (Δ {'n/a' if d_auc is None else f'{d_auc:+.4f}'})."
        )
    if summary:
        b += [("h", 2, "Summary"), ("ul", summary)]

    # data
    b.append(("h", 2, "Data"))
    b.append(("p", f"Source: {ctx.source or 'n/a'}"))
    if ctx.split_note:
        b.append(("p", f"Splits: {ctx.split_note}"))
    if ctx.rows_per_split:
        b.append(("table", ["split", "rows"], [[k, f"{int(v):,}"] for k, v in ctx.rows_per_split.items()]))
    b.append(("p", f"Directed features ({len(ctx.directed_features)}):"))
    b.append(("ul", [f"{name} ({_dir(d)})" for name, d in ctx.directed_features.items()]))
    b.append(("p", f"Backbones: {', '.join(ctx.backbones) if ctx.backbones else 'n/a'}"))

    # chosen hyper-parameters
    params = {bb: _params_for(ctx, bb) for bb in ctx.backbones}
    keys: list[str] = []
    for p in params.values():
        keys += [k for k in p if k not in keys]
    if keys:
        b.append(("h", 2, "Chosen CCSS hyper-parameters"))
        b.append(
            (
                "table",
                ["backbone"] + [_PARAM_NAMES.get(k, k) for k in keys],
                [[bb] + [_fmt_param(params[bb].get(k)) for k in keys] for bb in ctx.backbones],
            )
        )

    # main table
    b.append(("h", 2, "Results on the test split"))
    header = ["backbone", "model", "AUC", "GAUC", "LogLoss"]
    if has_oracle:
        header.append("oracle AUC")
    header += ["violation rate (pooled)", "rows with a violation", "ICE monotone share", "PD direction ok"]
    if has_agreement:
        header.append("true-direction agreement")
    rows = []
    for r in results:
        row = [r.backbone, r.display, _num(r.accuracy.get("auc")), _num(r.accuracy.get("gauc")),
               _num(r.accuracy.get("logloss"))]
        if has_oracle:
            row.append(_num(r.accuracy.get("oracle_auc")))
        row += [
            _pct(r.pooled.get("violation_rate"), 2),
            _pct(r.pooled.get("rows_with_violation"), 1),
            _pct(r.pooled.get("ice_monotone_share"), 1),
            _pct(r.pooled.get("pd_direction_ok_share"), 0),
        ]
        if has_agreement:
            row.append(_pct(r.direction_agreement, 0))
        rows.append(row)
    b.append(("table", header, rows))
    b.append(
        (
            "p",
            "Violation rate: share of (row, neighbouring bucket centre) moves where the prediction moves "
            f"against the feature's direction by more than ε = {ctx.eps:g}; pooled over all directed "
            "features. ICE monotone share: share of rows whose prediction over all bucket centres is "
            "monotone in the feature's direction (averaged over features). PD direction ok: share of "
            "features whose partial-dependence curve has a Spearman ρ of the declared sign."
            + (" Oracle AUC: AUC of the generator's true click probability, the ceiling." if has_oracle else ""),
        )
    )

    # per-feature verdicts, per backbone
    b.append(("h", 2, "Per-feature verdicts"))
    for bb in ctx.backbones:
        base, ccss = _find(results, bb, BASELINE), _find(results, bb, CCSS)
        if len(ctx.backbones) > 1:
            b.append(("h", 3, f"Backbone {bb}"))
        b.append(
            (
                "ul",
                [
                    verdict_sentence(name, d, _compliance_of(ccss, name), _compliance_of(base, name))
                    for name, d in ctx.directed_features.items()
                ],
            )
        )
        detail = []
        for name, d in ctx.directed_features.items():
            cells = [name, _dir(d)]
            for res in (base, ccss):
                row = _feature_row(res, name)
                cells += [
                    _pct(row.get("violation_rate"), 2),
                    _pct(row.get("ice_monotone_share"), 1),
                    _num(row.get("pd_spearman"), 2),
                ]
            detail.append(cells)
        b.append(
            (
                "table",
                ["feature", "dir", "baseline violations", "baseline ICE monotone", "baseline PD ρ",
                 "CCSS violations", "CCSS ICE monotone", "CCSS PD ρ"],
                detail,
            )
        )

    for note in ctx.notes:
        b.append(("p", note))

    if ctx.plots:
        b.append(("h", 2, "Figures"))
        for p in ctx.plots:
            b.append(("img", p.path, p.caption))
    return b


def _feature_row(result: ModelResult | None, feature: str) -> dict[str, Any]:
    if result is None or result.per_feature is None or result.per_feature.empty:
        return {}
    sub = result.per_feature[result.per_feature["feature"] == feature]
    return {} if sub.empty else sub.iloc[0].to_dict()


def _fmt_param(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# ------------------------------------------------------------------------------------ renderers


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_link_target(path: str) -> str:
    return f"<{path}>" if any(c in path for c in " ()") else path


def _to_markdown(blocks: list[tuple]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
                     "|" + "|".join(["---"] * len(header)) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{_md_cell(block[2])}]({_md_link_target(block[1])})\n\n*{block[2]}*")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: .15em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #bbb; padding: .3em .6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child, td:nth-child(2) { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-style: italic; color: #555; }
""".strip()


def _to_html(blocks: list[tuple], title: str) -> str:
    e = html.escape
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{e(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{e(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>\n" + "\n".join(f"  <li>{e(item)}</li>" for item in block[1]) + "\n</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in block[1])
            rows = "\n".join("  <tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table>\n  <thead><tr>{head}</tr></thead>\n  <tbody>\n{rows}\n  </tbody>\n</table>")
        elif kind == "img":
            body.append(
                f'<figure><img src="{e(block[1], quote=True)}" alt="{e(block[2], quote=True)}">'
                f"<figcaption>{e(block[2])}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{e(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render_report(context: ReportContext | Mapping[str, Any]) -> tuple[str, str]:
    """Render ``(markdown, html)``; image links are the ``PlotRef.path`` values, relative to the
    directory the two files are written to."""
    ctx = context if isinstance(context, ReportContext) else ReportContext.from_dict(context)
    blocks = _blocks(ctx)
    return _to_markdown(blocks), _to_html(blocks, ctx.title)
