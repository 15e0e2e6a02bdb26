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
lineage (git commit, the DVC md5 of the data and model artifacts, the Kedro environment, a hash of all
parameters) and the commands that rebuild it.

The DVC md5s are those ``dvc.lock`` records for the stage that wrote each artifact. ``dvc.lock`` may be
older than the files (after a plain ``kedro run``), so each one is compared with the file as it is now
(:class:`ArtifactRecord.status`): a file's md5 is the md5 of its bytes (what DVC 3 records); a folder's
DVC hash is not recomputed here (``dvc status`` compares it).

Kedro-free: the catalog dataset :class:`ccss_pipeline.datasets.ProjectLineageDataset` reads git and
``dvc.lock``; the node of the evaluation pipeline builds the context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.config import SplitConfig
from ccss_pipeline.data.splitting import split_sentence
from ccss_pipeline.evaluation.plots import ONE_BUCKET_NOTE
from ccss_pipeline.evaluation.render import Part, Table, render
from ccss_pipeline.evaluation.report import (
    BASELINE,
    CCSS,
    HEADLINE,
    ModelResult,
    PlotRef,
    _diff,
    _dir,
    _fmt_param,
    _interval,
    _mean_std,
    _missing,
    _seeds_header,
    _value,
    edge_warnings,
    epoch_limit_warnings,
    hidden_recalibration_rows,
    plot_figure,
    recalibration_sentence,
)
from ccss_pipeline.evaluation.seeds import summarize_over_seeds
from ccss_pipeline.spec import FeatureSpec, NumericalFeature

UNKNOWN = "unknown"
MATCHES = "matches"
DIFFERS = "differs"
FOLDER = "folder — compare with `dvc status`"
NOT_LOCKED = "not in dvc.lock"
#: Metrics of the per-backbone accuracy and monotonicity table, in order (shown where present).
CARD_METRICS = ["auc", "gauc", "logloss", "logloss_uncalibrated", "accuracy", "precision", "recall", "f1", "brier",
                "brier_uncalibrated", "recalibration_temperature", "recalibration_shift", "wrong_step_share",
                "max_feature_wrong_step_share", "edge_wrong_share", "monotone_row_share"]  # fmt: skip
_LABELS = {m: label for m, label, _ in HEADLINE}
_SHARES = {m for m, _, share in HEADLINE if share}
#: The model-ready tables: their md5s are "the data" of the training-data section.
DATA_PREFIX = "data/05_model_input/"


# ------------------------------------------------------------------------------------------ lineage


@dataclass
class ArtifactRecord:
    """One tracked artifact: the md5 ``dvc.lock`` records for it (``stage``: the stage whose outputs
    record it) and what it is now (``kind``: file, folder or missing; ``current_md5`` of a file's bytes)."""

    path: str
    stage: str | None = None
    locked_md5: str | None = None
    nfiles: int | None = None
    kind: str = UNKNOWN
    current_md5: str | None = None

    @property
    def status(self) -> str:
        """ "matches" / "differs — ..." for a file, the folder note for a folder, or why nothing is compared."""
        if self.locked_md5 is None:
            return NOT_LOCKED
        if self.kind == "folder":
            return FOLDER
        if self.kind == "missing":
            return f"{DIFFERS} — the file is missing"
        if self.kind != "file" or self.current_md5 is None:
            return "not checked"
        if self.current_md5 == self.locked_md5:
            return MATCHES
        return f"{DIFFERS} — the file changed after dvc.lock was written (`dvc repro` or `dvc commit` records it)"


def locked_outputs(dvc_lock: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``path -> {"stage", "md5", "nfiles"}`` of every output ``dvc.lock`` records, by the stage that wrote it."""
    out: dict[str, dict[str, Any]] = {}
    stages = (dvc_lock or {}).get("stages") or {}
    if not isinstance(stages, Mapping):
        return out
    for stage, entry in stages.items():
        for item in (entry or {}).get("outs") or []:
            if isinstance(item, Mapping) and item.get("path"):
                out[str(item["path"]).rstrip("/")] = {"stage": str(stage), "md5": item.get("md5"),
                                                      "nfiles": item.get("nfiles")}  # fmt: skip
    return out


def artifact_records(
    dvc_lock: Mapping[str, Any] | None, current: Mapping[str, Mapping[str, Any]]
) -> list[ArtifactRecord]:
    """One :class:`ArtifactRecord` per path of ``current`` (``path -> {"kind", "md5"}``, as
    :class:`~ccss_pipeline.datasets.ProjectLineageDataset` reads them), in that order."""
    locked = locked_outputs(dvc_lock)
    records = []
    for path, now in current.items():
        lock = locked.get(str(path).rstrip("/"), {})
        md5 = lock.get("md5")
        records.append(ArtifactRecord(
            path=str(path), stage=lock.get("stage"), locked_md5=None if md5 is None else str(md5),
            nfiles=lock.get("nfiles"), kind=str(now.get("kind", UNKNOWN)), current_md5=now.get("md5")))  # fmt: skip
    return records


@dataclass
class Lineage:
    """Where the card's models come from: git, the Kedro environment, the parameters, the DVC md5s."""

    git_commit: str = UNKNOWN
    git_dirty: bool | None = None
    git_dirty_paths: list[str] = field(default_factory=list)
    env: str = "base"
    params_hash: str = ""
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    has_dvc_lock: bool = False

    @classmethod
    def from_loaded(cls, loaded: Mapping[str, Any], params_hash: str = "") -> Lineage:
        """From what the lineage dataset loads (``git_commit``, ``git_dirty``, ``git_dirty_paths``,
        ``dvc_lock``, ``env``, ``artifacts``); anything absent is "unknown"."""
        dvc_lock = loaded.get("dvc_lock")
        return cls(
            git_commit=str(loaded.get("git_commit") or UNKNOWN),
            git_dirty=loaded.get("git_dirty"),
            git_dirty_paths=[str(p) for p in loaded.get("git_dirty_paths") or []],
            env=str(loaded.get("env") or "base"),
            params_hash=params_hash,
            artifacts=artifact_records(dvc_lock, loaded.get("artifacts") or {}),
            has_dvc_lock=isinstance(dvc_lock, Mapping),
        )


# ------------------------------------------------------------------------------------ time ranges


def _timestamp(ms: Any) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def split_time_ranges(event_times: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``split -> (first event, last event)`` in UTC, from each split's ``event_ts`` (ms since the epoch);
    a split without values is left out. Only meaningful when the schema declares a timestamp."""
    out = {}
    for split, values in event_times.items():
        if values is None:
            continue
        array = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy()
        if len(array):
            out[str(split)] = (_timestamp(np.min(array)), _timestamp(np.max(array)))
    return out


# ------------------------------------------------------------------------------------------ context


@dataclass
class ModelCardContext:
    """Everything the card shows.

    - ``spec``: the fitted feature spec (source, label name, features, directions, buckets, the training
      quantiles that bound the raw grid);
    - ``backbones``: in display order; ``results``: one :class:`.report.ModelResult` per (backbone,
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
    return 0.5 if _missing(t) else float(t)


def _metric_label(metric: str, ctx: ModelCardContext) -> str:
    return _LABELS.get(metric, metric).replace("{t}", f"{_threshold(ctx):g}")


def _raw(v: Any) -> str:
    return "n/a" if _missing(v) else f"{float(v):.6g}"


def _training_range(feature: NumericalFeature) -> tuple[Any, Any]:
    values = feature.quantiles or feature.centres
    return (values[0], values[-1]) if values else (None, None)


def _commit_text(lin: Lineage) -> str:
    if lin.git_commit == UNKNOWN:
        return "unknown (no git repository or no git here)"
    if lin.git_dirty is None:
        return f"{lin.git_commit} (working tree state unknown)"
    if not lin.git_dirty:
        return f"{lin.git_commit} (working tree clean)"
    shown = ", ".join(lin.git_dirty_paths[:10]) + (", …" if len(lin.git_dirty_paths) > 10 else "")
    return f"{lin.git_commit} (working tree DIRTY: uncommitted changes in {shown or 'some files'})"


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
    rows = [[f.name, _dir(f.direction), _raw(_training_range(f)[0]), _raw(_training_range(f)[1])] for f in directed]
    return Part(["Training range of each constrained feature — the range over which monotonicity was measured "
                 "(raw units):"],
                Table(["feature", "direction", "training minimum", "training maximum"], rows))  # fmt: skip


def _artifact_rows(records: Sequence[ArtifactRecord]) -> list[list[str]]:
    rows = []
    for r in records:
        md5 = r.locked_md5 or "—"
        if r.nfiles is not None and r.locked_md5:
            md5 += f" ({r.nfiles} files)"
        rows.append([r.path, r.stage or "—", md5, r.status])
    return rows


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


def _data_hashes(ctx: ModelCardContext) -> Part | None:
    """The DVC md5s of the model-ready tables; None when there is a dvc.lock without them."""
    data = [r for r in ctx.lineage.artifacts if r.path.startswith(DATA_PREFIX)]
    if data:
        return Part(["DVC hash of the data (md5 as dvc.lock records it for the stage that wrote it; "
                     "'current' compares it with the file as it is now):"],
                    Table(["file", "stage", "md5 in dvc.lock", "current"], _artifact_rows(data)))  # fmt: skip
    if not ctx.lineage.has_dvc_lock:
        return Part(["DVC hash of the data: unknown — no dvc.lock was found."])
    return None


def _features(ctx: ModelCardContext) -> Part:
    spec, unconstrained = ctx.spec, set(ctx.unconstrained)
    rows = []
    for f in spec.directed:
        constrained = f"no — {ONE_BUCKET_NOTE}" if f.name in unconstrained else "yes"
        rows.append([f.name, _dir(f.direction), str(f.n_buckets), f.transform, constrained])
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
        name = f"{f.name} ({_dir(f.direction)})"
        if f.name in unconstrained:
            rows.append([name, ONE_BUCKET_NOTE, "—", "—", "—"])
            continue
        values = []
        for variant in (CCSS, BASELINE):
            for m in ("wrong_step_share", "edge_wrong_share"):
                r = cell.get((variant, f.name))
                values.append(
                    "n/a" if r is None or m not in metrics else _mean_std(r[f"{m}_mean"], r[f"{m}_std"], True)
                )
        rows.append([name, *values])
    return rows


def _accuracy(ctx: ModelCardContext, bb: str, ccss: ModelResult | None, base: ModelResult | None) -> Part:
    """The CCSS model against its baseline on the test split, then the paired ΔAUC and, for a model whose
    best epoch was its last allowed one, that it is likely undertrained."""
    auc = _paired_row(ctx, bb, "auc")
    if auc is not None and int(auc.get("n") or 0):
        delta = (f"ΔAUC (CCSS − baseline, paired on the training seed, {int(auc['n'])} pairs): "
                 f"{_diff(auc.get('mean'), False)}, 95% interval {_interval(auc, False)}.")  # fmt: skip
    else:
        delta = "ΔAUC (CCSS − baseline, paired on the training seed): n/a — no paired seeds."
    if ccss is None:
        return Part(["No CCSS model of this backbone was evaluated."], None, [delta])
    shown = [r for r in (ccss, base) if r is not None]
    hidden = ({"gauc"} if ctx.gauc_note else set()) | hidden_recalibration_rows(shown)
    metrics = [m for m in CARD_METRICS if m not in hidden and any(not _missing(r.mean.get(m)) for r in shown)]
    header = ["metric"] + [_seeds_header(r) for r in shown]
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
    phrase = f"{_METHOD_NAMES.get(method, method)} at λ = {_fmt_param(p.get('weight'))}"
    if method == "ccss":
        return f"{phrase}, margin {_fmt_param(p.get('margin'))}"
    own = p.get("method_params") or {}
    return phrase + "".join(f", {k} {_fmt_param(v)}" for k, v in sorted(own.items()))


def _chosen(p: Mapping[str, Any]) -> Part:
    if not p:
        return Part(["No chosen parameters were recorded for this backbone (best_params has no entry)."])
    feasible, target = p.get("feasible"), p.get("max_violation")
    met = ("n/a — no completed search trial, the configured defaults" if feasible is None else
           "yes" if feasible else "NO — no trial met the target; the least violating one was chosen")  # fmt: skip
    rows = [
        ["method", _fmt_param(p.get("method") or "ccss")],
        *[[name, _fmt_param(value)] for name, value in sorted((p.get("method_params") or {}).items())],
        ["λ (contrastive weight)", _fmt_param(p.get("weight"))],
        ["margin", _fmt_param(p.get("margin"))],
        ["loss", _fmt_param(p.get("loss"))],
        ["source trial", _fmt_param(p.get("source"))],
        ["validation AUC", _value(p.get("val_auc"), False)],
        ["validation raw-grid wrong-step share", _value(p.get("val_wrong_step_share"), True)],
        ["validation edge test wrong", _value(p.get("val_edge_wrong_share"), True)],
        ["target (wrong-step share)", "—" if _missing(target) else f"≤ {_value(target, True)}"],
        [
            "target (edge test)",
            "—" if _missing(p.get("max_edge_violation")) else f"≤ {_value(p.get('max_edge_violation'), True)}",
        ],
        ["feasible (target met)", met],
        ["study", f"{p.get('study', '?')} ({p.get('n_trials', 0)} trials)"],
    ]
    return Part(table=Table(["parameter", "value"], rows))


def _rebuild_notes(lin: Lineage) -> list[str]:
    """Why checking out the commit might not give these models back."""
    notes = []
    if lin.git_commit == UNKNOWN:
        notes.append("This copy is not a git repository, so the commit to check out is not known.")
    elif lin.git_dirty:
        notes.append(
            "The working tree had uncommitted changes when this card was written: checking out the commit "
            "alone does not give exactly these inputs."
        )
    if lin.env != "base":
        notes.append(
            f"dvc.yaml's stages run the base environment; these models came from the '{lin.env}' environment, "
            f"so rebuild them with `kedro run --env {lin.env}` after `dvc pull`."
        )
    if any(r.status.startswith(DIFFERS) for r in lin.artifacts):
        notes.append(
            "Some artifacts differ from dvc.lock: `dvc repro` (or `dvc commit`) records the current ones; "
            "until then `dvc pull` restores the recorded versions, not the ones this card describes."
        )
    return notes


def _lineage(ctx: ModelCardContext) -> dict[str, Any]:
    lin = ctx.lineage
    facts = [
        f"Git commit: {_commit_text(lin)}",
        f"Kedro environment: {lin.env}",
        f"Parameters hash (SHA-256 of all parameters as sorted JSON, ccss_pipeline.fingerprint.content_hash): "
        f"{lin.params_hash or UNKNOWN}",
    ]
    if lin.artifacts and lin.has_dvc_lock:
        dvc = Part(["DVC md5 of the data and model artifacts, as dvc.lock records them for the stage that wrote "
                    "each one. Under `dvc repro` the upstream stages' entries are final when this card is written; "
                    "after a plain `kedro run` dvc.lock may be older than the files, hence the last column: a file "
                    "is compared by the md5 of its bytes (what DVC 3 records), a folder by `dvc status`."],
                   Table(["artifact", "stage", "md5 in dvc.lock", "current"], _artifact_rows(lin.artifacts)))  # fmt: skip
    else:
        dvc = Part(["DVC md5s: unknown — no dvc.lock was found next to the project."])
    commit = lin.git_commit if lin.git_commit != UNKNOWN else "<commit: unknown>"
    return {"facts": facts, "dvc": dvc, "rebuild": f"git checkout {commit}\ndvc pull\ndvc repro",
            "notes": _rebuild_notes(lin)}  # fmt: skip


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
        "data_hashes": _data_hashes(ctx),
        "features": _features(ctx),
        "backbones": [_backbone(ctx, bb) for bb in ctx.backbones],
        "lineage": _lineage(ctx),
    }  # fmt: skip


def render_model_card(ctx: ModelCardContext) -> tuple[str, str]:
    """``(markdown, html)`` of the card; the HTML embeds each figure with bytes as a data URI."""
    return render("model_card", _view(ctx))
