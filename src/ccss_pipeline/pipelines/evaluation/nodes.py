"""Evaluation nodes: accuracy and monotonicity of every trained model on the test split, plots, report."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel

from ccss_pipeline.config import EvaluationConfig, FeatureConfig
from ccss_pipeline.data.splitting import split_sentence
from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.evaluation.accuracy import (
    CLASSIFICATION_METRICS,
    accuracy_metrics,
    calibration_data,
    probability_scores,
    roc_curve_data,
)
from ccss_pipeline.evaluation.model_card import Lineage, ModelCardContext, render_model_card, split_time_ranges
from ccss_pipeline.evaluation.monotonicity import monotonicity_report, true_direction_agreement
from ccss_pipeline.evaluation.plots import (
    not_constrained_figure,
    plot_calibration,
    plot_partial_dependence,
    plot_raw_grid_ice,
    plot_roc,
    plot_violation_bars,
)
from ccss_pipeline.evaluation.raw_grid import raw_grid_report
from ccss_pipeline.evaluation.report import ModelResult, PlotRef, ReportContext, render_report
from ccss_pipeline.evaluation.seeds import paired_difference, summarize_over_seeds
from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.lineage import require_spec
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.epoch_limit import at_epoch_limit
from ccss_pipeline.model.persistence import TrainedModel, first_seed_models
from ccss_pipeline.model.scoring import score_fn
from ccss_pipeline.parquet_table import ParquetTable, as_frame
from ccss_pipeline.spec import GROUP_COLUMN, TIME_COLUMN, FeatureSpec, ModelInputs, NumericalFeature

PLOT_DIR = "plots"
#: Resolution of the PNGs the report embeds: the catalog saves the same figures at this dpi.
PLOT_DPI = 110
NO_USER_GAUC = "GAUC: n/a — the schema declares no user column"


def _label_name(spec: FeatureSpec) -> str:
    return str(getattr(spec, "label_name", "label") or "label")


def _has_user(spec: FeatureSpec) -> bool:
    return bool(getattr(spec, "has_user", True))


def _one_bucket(spec: FeatureSpec) -> list[str]:
    """Directed features with a single bucket: CCSS cannot constrain them, nothing is measurable."""
    return [f.name for f in spec.directed if f.n_buckets < 2]


#: Per-model figures kept in ``seed_metrics`` (one row per trained model) and aggregated over seeds.
#: ``logloss`` and ``brier`` (and every other figure) are those of the served, recalibrated probability;
#: ``*_uncalibrated`` the same model's before its recalibration; ``recalibration_temperature`` (T = 1/a)
#: and ``recalibration_shift`` (b) the fitted map (1 and 0 without one).
SEED_METRICS = [
    "auc", "gauc", "logloss", *CLASSIFICATION_METRICS, "logloss_uncalibrated", "brier_uncalibrated",
    "recalibration_temperature", "recalibration_shift", "oracle_auc",
    "wrong_step_share", "wrong_step_share_inside", "wrong_step_share_crossing", "max_feature_wrong_step_share",
    "edge_wrong_share", "monotone_row_share", "mean_wrong_mass", "neighbour_violation_rate",
    "ice_monotone_share", "true_direction_agreement",
]  # fmt: skip
#: The per-model columns of ``seed_metrics`` before the figures: ``recalibration`` is the map's kind;
#: ``best_epoch`` and ``max_epochs`` (its budget) tell a fit stopped by its epoch limit (likely undertrained).
SEED_KEYS = ["model", "backbone", "variant", "seed", "recalibration", "best_epoch", "max_epochs"]


def evaluate_models(
    test_model_input: pd.DataFrame,
    spec: FeatureSpec,
    trained_models: Mapping[str, TrainedModel],
    source_truth: dict[str, Any],
    evaluation: EvaluationConfig,
) -> tuple[
    dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame
]:
    """Accuracy and monotonicity (spec §6) of every trained model on the test split, scored in float32.

    Headline monotonicity is the raw-grid sweep (:mod:`ccss_pipeline.evaluation.raw_grid`), which does not
    mirror the training move; the bucket-centre neighbour rate is kept as a secondary figure. Curves, ROC
    and calibration are kept for the first seed of each backbone and variant (the plots show those).

    Every figure is the served model's: its probability after the monotone recalibration it was
    trained with (``TrainedModel.recalibration``; a strictly increasing map of the logit, so AUC, GAUC
    and the direction of every raw-grid step are the raw model's). LogLoss and Brier are also reported before
    it (``logloss_uncalibrated``, ``brier_uncalibrated``, from the same model rebuilt without it), with
    the fitted T and shift; the calibration table has both curves in the same bins.

    Accuracy, precision, recall and F1 count a row as positive when its probability is at least
    ``evaluation.threshold``. GAUC is NaN (and ``gauc_note`` says why) when the schema declares no user
    column or every test row has the same group: it would only repeat the AUC. Directed features with a
    single bucket are left out of the agreement with the true directions (nothing to measure).

    Returns per-model results, bucket-centre and raw-grid per-feature tables, bucket-centre PD curves,
    raw-grid curves, ROC and calibration data, and ``seed_metrics`` (one row per model).
    """
    require_spec("test_model_input", test_model_input, spec, "feature_engineering")
    if GROUP_COLUMN not in test_model_input.columns:  # no user column: one group, hence no GAUC
        test_model_input = test_model_input.assign(**{GROUP_COLUMN: 0})
    test = ModelInputs.from_frame(test_model_input, spec)
    device = resolve_device(evaluation.device)
    one_bucket = set(_one_bucket(spec))
    true_directions = {k: int(v) for k, v in source_truth.get("directions", {}).items() if k not in one_bucket}
    first_seed = set(first_seed_models(trained_models).values())
    results: dict[str, Any] = {}
    per_feature, grid_features, curves, grid_curves, roc, calibration, rows = [], [], [], [], [], [], []
    for name, trained in sorted(trained_models.items()):
        backbone, variant, seed = trained.backbone_name, trained.variant, trained.seed
        scorer = score_fn(trained.rebuild(spec), device)
        prob = scorer(test.cat, test.dense, test.bucket)
        raw_prob = (
            prob
            if trained.recalibration.is_identity
            else score_fn(trained.rebuild(spec, recalibrated=False), device)(test.cat, test.dense, test.bucket)
        )
        uncalibrated = probability_scores(test.label, raw_prob)
        accuracy = accuracy_metrics(test.label, prob, test.group, test.oracle, threshold=evaluation.threshold)
        gauc_note = _gauc_note(spec, accuracy)
        if gauc_note:
            accuracy.update(gauc=math.nan, gauc_note=gauc_note)
        grid = raw_grid_report(
            scorer,
            test,
            spec,
            levels=evaluation.grid_levels,
            rows=evaluation.grid_rows,
            seed=evaluation.seed,
            eps=evaluation.eps,
        )
        mono = monotonicity_report(
            scorer, test, spec, eps=evaluation.eps, max_rows=evaluation.max_rows, seed=evaluation.seed
        )
        agreement = None
        if true_directions:
            agree = true_direction_agreement(mono.curves, true_directions)
            agreement = float(agree["agrees"].mean()) if len(agree) else None
        results[name] = {
            "backbone": backbone,
            "variant": variant,
            "seed": seed,
            "move": trained.move,
            "accuracy": accuracy,
            "uncalibrated": uncalibrated,
            "recalibration": trained.recalibration.to_dict(),
            "raw_grid": grid.pooled,
            "pooled": mono.pooled,
            "direction_agreement": agreement,
            "contrastive": trained.contrastive.model_dump() if trained.contrastive is not None else {},
        }
        tag: dict[str, Any] = {"model": name, "backbone": backbone, "variant": variant, "seed": seed}
        epochs = {
            "best_epoch": trained.best_epoch,
            "max_epochs": trained.optimizer.max_epochs if trained.optimizer is not None else None,
        }
        recalibration = {
            "recalibration": trained.recalibration.kind,
            "logloss_uncalibrated": uncalibrated["logloss"],
            "brier_uncalibrated": uncalibrated["brier"],
            "recalibration_temperature": trained.recalibration.temperature,
            "recalibration_shift": trained.recalibration.shift,
        }
        per_feature.append(mono.per_feature.assign(**tag))
        grid_features.append(grid.per_feature.assign(**tag))
        if name in first_seed:
            curves.append(mono.curves.assign(**tag))
            grid_curves.append(grid.curves.assign(**tag))
            roc.append(roc_curve_data(test.label, prob).assign(**tag))
            calibration.append(
                calibration_data(
                    test.label, prob, n_bins=evaluation.calibration_bins, prob_uncalibrated=raw_prob
                ).assign(**tag)
            )
        rows.append(
            {
                **tag,
                **{k: accuracy.get(k) for k in ("auc", "gauc", "logloss", *CLASSIFICATION_METRICS, "oracle_auc")},
                **recalibration,
                **epochs,
                **{
                    k: grid.pooled[k]
                    for k in (
                        "wrong_step_share",
                        "wrong_step_share_inside",
                        "wrong_step_share_crossing",
                        "max_feature_wrong_step_share",
                        "edge_wrong_share",
                        "monotone_row_share",
                        "mean_wrong_mass",
                    )
                },
                "neighbour_violation_rate": mono.pooled["violation_rate"],
                "ice_monotone_share": mono.pooled["ice_monotone_share"],
                "true_direction_agreement": agreement,
            }
        )
    seed_metrics = pd.DataFrame(rows, columns=[*SEED_KEYS, *SEED_METRICS])
    return (
        results,
        pd.concat(per_feature, ignore_index=True),
        pd.concat(grid_features, ignore_index=True),
        pd.concat(curves, ignore_index=True),
        pd.concat(grid_curves, ignore_index=True),
        pd.concat(roc, ignore_index=True),
        pd.concat(calibration, ignore_index=True),
        seed_metrics,
    )


def _gauc_note(spec: FeatureSpec, accuracy: dict[str, Any]) -> str:
    """Why GAUC is not reported ("" when it is): no user column in the schema, one group, or no user
    with both classes."""
    if not _has_user(spec):
        return NO_USER_GAUC
    if int(accuracy.get("n_groups", 0)) <= 1:
        return "GAUC: n/a — every test row has the same user, so GAUC would only repeat the AUC"
    if int(accuracy.get("gauc_groups", 0)) == 0 or not np.isfinite(accuracy.get("gauc", math.nan)):
        return "GAUC: n/a — no user has both classes in the test split"
    return ""


def aggregate_over_seeds(seed_metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
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
    return summary, paired.drop(columns=["differences", "seeds"], errors="ignore"), metrics


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


def _display(variant: object) -> str:
    return "CCSS" if str(variant).lower() == "ccss" else str(variant)


def _variant_order(variant: object) -> tuple[int, str]:
    v = str(variant).lower()
    return (0 if v == "baseline" else 1 if v == "ccss" else 2, v)


def _first_seed_by_model(frame: pd.DataFrame, backbone: str | None = None) -> dict[str, pd.DataFrame]:
    """``"<backbone> <variant>"`` → that model's rows of its first (lowest) seed, baseline before CCSS.
    ``evaluate_models`` already keeps curves for the first seed only; this makes sure of it."""
    part = frame if backbone is None else frame[frame["backbone"] == backbone]
    out = {}
    for (b, v), group in sorted(
        part.groupby(["backbone", "variant"]), key=lambda kv: (kv[0][0], _variant_order(kv[0][1]))
    ):
        if "seed" in group.columns:
            group = group[group["seed"] == group["seed"].min()]
        out[f"{b} {_display(v)}"] = group.drop(columns=["model", "backbone", "variant", "seed"], errors="ignore")
    return out


def _seed_means_by_model(per_feature: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """``"<backbone> <variant>"`` → feature, ``metric`` (mean over seeds) and ``<metric>_std``."""
    summary = summarize_over_seeds(per_feature, ["backbone", "variant", "feature"], [metric])
    summary = summary.rename(columns={f"{metric}_mean": metric})
    out = {}
    for (b, v), group in sorted(
        summary.groupby(["backbone", "variant"]), key=lambda kv: (kv[0][0], _variant_order(kv[0][1]))
    ):
        out[f"{b} {_display(v)}"] = group[["feature", metric, f"{metric}_std", "n_seeds"]]
    return out


def _ice_figure(grid_models: dict[str, pd.DataFrame], feat: NumericalFeature, label: str) -> Figure:
    """The raw-grid ICE figure of one directed feature (baseline vs CCSS of one backbone, bucket edges)."""
    return plot_raw_grid_ice(grid_models, feat.name, feat.direction, feat.boundaries, label_name=label)


def plot_evaluation(
    raw_grid_curves: pd.DataFrame,
    partial_dependence: pd.DataFrame,
    raw_grid_per_feature: pd.DataFrame,
    roc_curves: pd.DataFrame,
    calibration_curves: pd.DataFrame,
    spec: FeatureSpec,
) -> tuple[dict[str, Figure], dict[str, Figure], Figure, Figure, Figure]:
    """Per backbone and directed feature, baseline vs CCSS on one figure: the raw-grid ICE band with the
    bucket edges (``ice_<backbone>_<feature>.png``) and the bucket-centre PD band
    (``pd_<backbone>_<feature>.png``); the raw-grid wrong-step share per feature and model (mean ± std
    over seeds); ROC and calibration of the first seed of every model.

    Axes and titles name the spec's label (``FeatureSpec.label_name``). A directed feature with one
    bucket gets a figure saying it is not constrained (instead of a one-point curve) and a hatched
    "not measurable" span instead of bars."""
    label = _label_name(spec)
    one_bucket = set(_one_bucket(spec))
    grid_plots, pd_plots = {}, {}
    for backbone in sorted(set(raw_grid_curves["backbone"]) | set(partial_dependence["backbone"])):
        grid_models = _first_seed_by_model(raw_grid_curves, backbone)
        pd_models = _first_seed_by_model(partial_dependence, backbone)
        for feat in spec.directed:
            if feat.name in one_bucket:
                grid_plots[f"ice_{backbone}_{feat.name}.png"] = not_constrained_figure(feat.name, feat.direction, label)
                pd_plots[f"pd_{backbone}_{feat.name}.png"] = not_constrained_figure(feat.name, feat.direction, label)
                continue
            grid_plots[f"ice_{backbone}_{feat.name}.png"] = _ice_figure(grid_models, feat, label)
            pd_plots[f"pd_{backbone}_{feat.name}.png"] = plot_partial_dependence(
                pd_models, feat.name, feat.direction, label_name=label
            )
    bars = _seed_means_by_model(raw_grid_per_feature, "wrong_step_share")
    seeds = sorted({int(t["n_seeds"].max()) for t in bars.values()}) or [0]
    n_seeds = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    violation = plot_violation_bars(
        bars,
        "wrong_step_share",
        features=[f.name for f in spec.directed],
        unmeasurable=sorted(one_bucket),
        title=f"Raw-grid wrong-step share of P({label}) per feature (mean ± std over {n_seeds} seeds)",
    )
    return (
        grid_plots,
        pd_plots,
        violation,
        plot_roc(_first_seed_by_model(roc_curves), label_name=label),
        plot_calibration(_first_seed_by_model(calibration_curves), label_name=label),
    )


def figure_png(fig: Figure, dpi: int = PLOT_DPI) -> bytes:
    """The PNG bytes of ``fig`` as the catalog writes it (``savefig`` at ``dpi``), without touching a file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _report_images(
    raw_grid_curves: pd.DataFrame,
    partial_dependence: pd.DataFrame,
    raw_grid_per_feature: pd.DataFrame,
    roc_curves: pd.DataFrame,
    calibration_curves: pd.DataFrame,
    spec: FeatureSpec,
) -> dict[str, bytes]:
    """Report path → PNG bytes of every figure :func:`plot_evaluation` draws, drawn again from the same
    tables (the saved PNGs cannot be loaded back through the catalog), at the catalog's dpi."""
    grid_plots, pd_plots, violation, roc, calibration = plot_evaluation(
        raw_grid_curves, partial_dependence, raw_grid_per_feature, roc_curves, calibration_curves, spec
    )
    figures = {f"{PLOT_DIR}/raw_grid/{k}": v for k, v in grid_plots.items()}
    figures |= {f"{PLOT_DIR}/partial_dependence/{k}": v for k, v in pd_plots.items()}
    figures |= {
        f"{PLOT_DIR}/violation_rate.png": violation,
        f"{PLOT_DIR}/roc.png": roc,
        f"{PLOT_DIR}/calibration.png": calibration,
    }
    return {path: figure_png(fig) for path, fig in figures.items()}


def _report_gauc_note(spec: FeatureSpec, evaluation_results: dict[str, Any]) -> str:
    """The note the report shows instead of GAUC, or "" when some model has a GAUC."""
    if not _has_user(spec):
        return NO_USER_GAUC
    notes = [str(r.get("accuracy", {}).get("gauc_note") or "") for r in evaluation_results.values()]
    gaucs = [r.get("accuracy", {}).get("gauc") for r in evaluation_results.values()]
    if any(g is not None and np.isfinite(float(g)) for g in gaucs):
        return ""
    return next((n for n in notes if n), "GAUC: n/a — no user has both classes in the test split" if gaucs else "")


def _rows_per_split(split_validation_report: ValidationReport) -> dict[str, int]:
    return {name: t.rows for name, t in split_validation_report.tables.items()}


def _report_plots(backbones: list[str], spec: FeatureSpec) -> list[PlotRef]:
    """The figures of the report, in order; a one-bucket feature's figures (a "not constrained" note,
    which the per-feature table already gives) are left out."""
    one_bucket = set(_one_bucket(spec))
    directed = [f for f in spec.directed if f.name not in one_bucket]
    plots = [
        PlotRef(f"{PLOT_DIR}/raw_grid/ice_{b}_{f.name}.png",
                f"{f.name} ({b}): mean prediction over the raw-value grid with the ICE band (10–90%); "
                "dotted lines are the bucket edges", "Raw-grid ICE (headline)")
        for b in backbones for f in directed
    ]  # fmt: skip
    plots += [
        PlotRef(
            f"{PLOT_DIR}/violation_rate.png",
            "Raw-grid wrong-step share per directed feature, mean ± std over seeds",
            "Raw-grid wrong-step share",
        ),
        PlotRef(f"{PLOT_DIR}/roc.png", "ROC curves on the test split (first seed)", "Accuracy"),
        PlotRef(f"{PLOT_DIR}/calibration.png", "Calibration on the test split (first seed)", "Accuracy"),
    ]
    plots += [
        PlotRef(f"{PLOT_DIR}/partial_dependence/pd_{b}_{f.name}.png",
                f"{f.name} ({b}): mean prediction at the bucket centres with the ICE band (10–90%)",
                "Bucket-centre partial dependence (secondary)")
        for b in backbones for f in directed
    ]  # fmt: skip
    optuna = {
        "pareto": "validation AUC against wrong-step share per trial",
        "history": "optimization history (validation AUC)",
        "importance": "parameter importances for validation AUC",
    }
    plots += [
        PlotRef(f"{PLOT_DIR}/optuna/{b}_{name}.png", f"{b}: {caption}", f"Optuna search ({b})")
        for b in backbones for name, caption in optuna.items()
    ]  # fmt: skip
    return plots


def write_report(
    evaluation_results: dict[str, Any],
    seed_summary: pd.DataFrame,
    paired_differences: pd.DataFrame,
    raw_grid_per_feature: pd.DataFrame,
    monotonicity_per_feature: pd.DataFrame,
    spec: FeatureSpec,
    best_params: Mapping[str, ChosenParams],
    split_validation_report: ValidationReport,
    evaluation: EvaluationConfig,
    feature_engineering: FeatureConfig,
    raw_grid_curves: pd.DataFrame | None = None,
    partial_dependence: pd.DataFrame | None = None,
    roc_curves: pd.DataFrame | None = None,
    calibration_curves: pd.DataFrame | None = None,
    optuna_plot_images: dict[str, bytes] | None = None,
) -> tuple[str, str]:
    """The readable report (Markdown and HTML): headline accuracy and raw-grid figures over seeds per
    backbone, the paired CCSS − baseline differences, per-feature raw-grid table, chosen parameters,
    method notes and the plots.

    The Markdown links the plots by relative path. The HTML is self-contained: the evaluation figures
    are drawn again from the curve tables (the same ones :func:`plot_evaluation` draws from) and
    embedded as PNG data URIs, and so are the Optuna plots of the model-training stage
    (``optuna_plot_images``, the PNG files as bytes); an image that is not available is named, never linked.

    The text names the spec's label; GAUC is replaced by a note when it cannot be measured (no user
    column in the schema, one group); directed features with one bucket are marked as not constrained.
    How the rows were split is worded from ``feature_engineering.split`` (:func:`split_sentence`, the
    model card's sentence too), never assumed to be by time."""
    images: dict[str, bytes] = {}
    if (
        raw_grid_curves is not None
        and partial_dependence is not None
        and raw_grid_per_feature is not None
        and roc_curves is not None
        and calibration_curves is not None
    ):
        images = _report_images(
            raw_grid_curves, partial_dependence, raw_grid_per_feature, roc_curves, calibration_curves, spec
        )
    for name, png in (optuna_plot_images or {}).items():
        images[f"{PLOT_DIR}/optuna/{name}"] = png
    evaluated = list(dict.fromkeys(str(r["backbone"]) for r in evaluation_results.values()))
    backbones = [b for b in best_params if b in evaluated] + [b for b in evaluated if b not in best_params]
    keys = ["backbone", "variant", "seed", "feature"]
    per_feature = raw_grid_per_feature
    if {*keys, "violation_rate"} <= set(monotonicity_per_feature.columns):
        neighbour = monotonicity_per_feature[[*keys, "violation_rate"]]
        per_feature = raw_grid_per_feature.merge(
            neighbour.rename(columns={"violation_rate": "neighbour_violation_rate"}), on=keys, how="left"
        )
    moves = sorted({str(r["move"]) for r in evaluation_results.values()
                    if r.get("move") and str(r.get("variant")).lower() == "ccss"})  # fmt: skip
    context = ReportContext(
        title=f"CCSS evaluation — {spec.source or 'data'}",
        source=spec.source or "unknown",
        rows_per_split=_rows_per_split(split_validation_report),
        directed_features={f.name: f.direction for f in spec.directed},
        backbones=backbones,
        results=ModelResult.from_summary(seed_summary),
        paired=paired_differences,
        per_feature=per_feature,
        chosen_params={b: best_params[b].model_dump() for b in backbones if b in best_params},
        method={
            "grid_levels": evaluation.grid_levels,
            "grid_rows": evaluation.grid_rows,
            "eps": evaluation.eps,
            "max_rows": evaluation.max_rows,
            "move": ", ".join(moves) or None,
            "threshold": evaluation.threshold,
        },
        plots=[PlotRef(p.path, p.caption, p.section, images.get(p.path)) for p in _report_plots(backbones, spec)],
        split_note=split_sentence(feature_engineering.split),
        label_name=_label_name(spec),
        gauc_note=_report_gauc_note(spec, evaluation_results),
        unconstrained=_one_bucket(spec),
    )
    return render_report(context)


def _card_plots(raw_grid_curves: pd.DataFrame | None, spec: FeatureSpec, backbones: list[str]) -> list[PlotRef]:
    """Each backbone's raw-grid ICE figures (``PlotRef.section`` = the backbone), with their PNG bytes
    drawn from the curve table as :func:`plot_evaluation` draws them; a one-bucket feature has none."""
    one_bucket = set(_one_bucket(spec))
    label = _label_name(spec)
    plots = []
    for backbone in backbones:
        grid_models = _first_seed_by_model(raw_grid_curves, backbone) if raw_grid_curves is not None else {}
        for feat in spec.directed:
            if feat.name in one_bucket:
                continue
            png = figure_png(_ice_figure(grid_models, feat, label)) if grid_models else None
            plots.append(PlotRef(
                f"{PLOT_DIR}/raw_grid/ice_{backbone}_{feat.name}.png",
                f"{feat.name} ({backbone}): mean P({label}) over the raw-value grid (training range) with the ICE band "
                "(10–90%), baseline and CCSS; dotted lines are the bucket edges", backbone, png))  # fmt: skip
    return plots


def _card_gauc_note(spec: FeatureSpec, seed_summary: pd.DataFrame) -> str:
    if not _has_user(spec):
        return NO_USER_GAUC
    gauc = pd.to_numeric(seed_summary.get("gauc_mean", pd.Series(dtype=float)), errors="coerce")
    return "" if np.isfinite(gauc).any() else "GAUC: n/a — not measurable on the test split (see the report)"


def _plain(value: Any) -> Any:
    """Parameters as plain JSON-able values: Kedro hands typed top-level parameters to ``parameters`` as
    their pydantic models (defaults filled in), which are dumped, so the hash sees values, not reprs."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_model_card(
    seed_summary: pd.DataFrame,
    paired_differences: pd.DataFrame,
    raw_grid_per_feature: pd.DataFrame,
    spec: FeatureSpec,
    best_params: Mapping[str, ChosenParams],
    split_validation_report: ValidationReport,
    train_model_input: ParquetTable | pd.DataFrame,
    validation_model_input: ParquetTable | pd.DataFrame,
    test_model_input: pd.DataFrame,
    raw_grid_curves: pd.DataFrame,
    project_lineage: dict[str, Any],
    parameters: dict[str, Any],
    evaluation: EvaluationConfig,
) -> tuple[str, str]:
    """The model card (Markdown and HTML; :mod:`ccss_pipeline.evaluation.model_card`): per backbone, the
    chosen CCSS model's intended use and limits, training data, features and directions, accuracy and
    monotonicity over seeds against its baseline with the paired ΔAUC and the raw-grid ICE figures
    (embedded in the HTML as data URIs), the chosen hyper-parameters, and the lineage.

    Pure: git and ``dvc.lock`` come from the read-only ``project_lineage`` dataset; ``parameters`` (all
    parameters, typed ones dumped to plain values) is hashed with :func:`ccss_pipeline.fingerprint.content_hash`. The model-ready tables give
    each split's time range (their ``event_ts``) when the schema declares a timestamp."""
    parameters = _plain(parameters)
    evaluated = list(dict.fromkeys(str(b) for b in seed_summary["backbone"]))
    backbones = [b for b in best_params if b in evaluated] + [b for b in evaluated if b not in best_params]
    schema = parameters.get("schema") or {}
    split = FeatureConfig.model_validate(parameters.get("feature_engineering") or {}).split
    frames = {"train": train_model_input, "validation": validation_model_input, "test": test_model_input}
    time_ranges = {}
    if schema.get("timestamp"):
        time_ranges = split_time_ranges(
            {k: as_frame(f, [TIME_COLUMN])[TIME_COLUMN] for k, f in frames.items() if TIME_COLUMN in f.columns}
        )  # one column of a lazy table
    rows = _rows_per_split(split_validation_report) or {k: len(f) for k, f in frames.items()}
    context = ModelCardContext(
        spec=spec,
        backbones=backbones,
        results=ModelResult.from_summary(seed_summary),
        paired=paired_differences,
        per_feature=raw_grid_per_feature,
        chosen_params={b: best_params[b].model_dump() for b in backbones if b in best_params},
        split=split,
        time_ranges=time_ranges,
        rows_per_split=rows,
        method={
            "grid_levels": evaluation.grid_levels,
            "grid_rows": evaluation.grid_rows,
            "eps": evaluation.eps,
            "threshold": evaluation.threshold,
        },
        plots=_card_plots(raw_grid_curves, spec, backbones),
        lineage=Lineage.from_loaded(project_lineage, params_hash=content_hash(parameters)),
        gauc_note=_card_gauc_note(spec, seed_summary),
    )
    return render_model_card(context)
