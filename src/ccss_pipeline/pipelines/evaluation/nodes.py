"""Evaluation nodes: accuracy and monotonicity of every trained model on the test split, plots, report."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ccss_pipeline.config import BackboneConfig, EvaluationConfig
from ccss_pipeline.evaluation.accuracy import accuracy_metrics, calibration_data, roc_curve_data
from ccss_pipeline.evaluation.monotonicity import monotonicity_report, true_direction_agreement
from ccss_pipeline.evaluation.plots import plot_calibration, plot_partial_dependence, plot_roc, plot_violation_bars
from ccss_pipeline.evaluation.report import ModelResult, PlotRef, ReportContext, render_report
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.persistence import spec_hash
from ccss_pipeline.model.trainer import score_fn
from ccss_pipeline.spec import FeatureSpec, ModelInputs

PLOT_DIR = "plots"


def _rebuild(spec: FeatureSpec, entry: dict[str, Any], name: str) -> CTRModel:
    config = entry["config"]
    if config.get("spec_hash") not in (None, spec_hash(spec)):
        raise ValueError(f"model '{name}' was trained with a different feature spec; rerun model_training")
    model = CTRModel(spec, BackboneConfig(**config["backbone"]))
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def _model_label(name: str) -> tuple[str, str]:
    backbone, _, variant = name.partition("__")
    return backbone, variant or "model"


def evaluate_models(
    test_model_input: pd.DataFrame,
    feature_spec: dict[str, Any],
    trained_models: dict[str, dict[str, Any]],
    source_truth: dict[str, Any],
    evaluation: EvaluationConfig,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Accuracy (AUC, GAUC, LogLoss, oracle AUC) and monotonicity (spec §6) per model, as tables.

    Returns the per-model results, per-feature monotonicity, partial-dependence curves, ROC and
    calibration curve data, and the flat ``metrics.json`` dict.
    """
    spec = FeatureSpec.from_dict(feature_spec)
    test = ModelInputs.from_frame(test_model_input, spec)
    device = resolve_device(evaluation.device)
    true_directions = {k: int(v) for k, v in source_truth.get("directions", {}).items()}
    results: dict[str, Any] = {}
    per_feature, curves, roc, calibration = [], [], [], []
    metrics: dict[str, float] = {}
    for name, entry in sorted(trained_models.items()):
        backbone, variant = _model_label(name)
        scorer = score_fn(_rebuild(spec, entry, name), device)
        prob = scorer(test.cat, test.dense, test.bucket)
        accuracy = accuracy_metrics(test.label, prob, test.group, test.oracle)
        mono = monotonicity_report(scorer, test, spec, eps=evaluation.eps, max_rows=evaluation.max_rows, seed=evaluation.seed)
        agreement = None
        if true_directions:
            agree = true_direction_agreement(mono.curves, true_directions)
            agreement = float(agree["agrees"].mean()) if len(agree) else None
        results[name] = {
            "backbone": backbone,
            "variant": variant,
            "accuracy": accuracy,
            "pooled": mono.pooled,
            "direction_agreement": agreement,
            "contrastive": entry["config"].get("contrastive", {}),
        }
        tag = {"model": name, "backbone": backbone, "variant": variant}
        per_feature.append(mono.per_feature.assign(**tag))
        curves.append(mono.curves.assign(**tag))
        roc.append(roc_curve_data(test.label, prob).assign(**tag))
        calibration.append(calibration_data(test.label, prob, n_bins=evaluation.calibration_bins).assign(**tag))
        for key in ("auc", "gauc", "logloss", "oracle_auc"):
            if accuracy.get(key) is not None:
                metrics[f"{name}.{key}"] = float(accuracy[key])
        for key in ("violation_rate", "compliance", "ice_monotone_share", "rows_with_violation"):
            metrics[f"{name}.{key}"] = float(mono.pooled[key])
        if agreement is not None:
            metrics[f"{name}.true_direction_agreement"] = agreement
    return (
        results,
        pd.concat(per_feature, ignore_index=True),
        pd.concat(curves, ignore_index=True),
        pd.concat(roc, ignore_index=True),
        pd.concat(calibration, ignore_index=True),
        metrics,
    )


def _by_model(frame: pd.DataFrame, backbone: str) -> dict[str, pd.DataFrame]:
    part = frame[frame["backbone"] == backbone]
    return {f"{backbone} {v}": g.drop(columns=["model", "backbone", "variant"]) for v, g in part.groupby("variant", sort=True)}


def plot_evaluation(
    partial_dependence: pd.DataFrame,
    monotonicity_per_feature: pd.DataFrame,
    roc_curves: pd.DataFrame,
    calibration_curves: pd.DataFrame,
    feature_spec: dict[str, Any],
) -> tuple[dict[str, Figure], Figure, Figure, Figure]:
    """PD curves with ICE bands per directed feature and backbone (baseline vs CCSS on one figure),
    violation rate per feature, ROC and calibration of every model."""
    spec = FeatureSpec.from_dict(feature_spec)
    everyone = lambda f: {m: g.drop(columns=["model", "backbone", "variant"]) for m, g in f.groupby("model", sort=True)}  # noqa: E731
    pd_plots = {}
    for backbone in sorted(partial_dependence["backbone"].unique()):
        models = _by_model(partial_dependence, backbone)
        for feat in spec.directed:
            curves = {m: c[c["feature"] == feat.name] for m, c in models.items()}
            pd_plots[f"pd_{backbone}_{feat.name}.png"] = plot_partial_dependence(curves, feat.name, feat.direction)
    return (
        pd_plots,
        plot_violation_bars(everyone(monotonicity_per_feature)),
        plot_roc(everyone(roc_curves)),
        plot_calibration(everyone(calibration_curves)),
    )


def write_report(
    evaluation_results: dict[str, Any],
    monotonicity_per_feature: pd.DataFrame,
    feature_spec: dict[str, Any],
    best_params: dict[str, Any],
    split_validation_report: dict[str, Any],
    evaluation: EvaluationConfig,
) -> tuple[str, str]:
    """The readable report (Markdown and HTML) with the plots embedded by relative path."""
    spec = FeatureSpec.from_dict(feature_spec)
    results = []
    for name, r in evaluation_results.items():
        table = monotonicity_per_feature[monotonicity_per_feature["model"] == name].drop(columns=["model", "backbone", "variant"])
        results.append(ModelResult(r["backbone"], r["variant"], r["accuracy"], r["pooled"], table.reset_index(drop=True), r["direction_agreement"]))
    backbones = list(dict.fromkeys(r["backbone"] for r in evaluation_results.values()))
    plots = [
        PlotRef(f"{PLOT_DIR}/partial_dependence/pd_{b}_{f.name}.png", f"Partial dependence and ICE band (10–90%) of {f.name} ({b})")
        for b in backbones
        for f in spec.directed
    ]
    plots += [
        PlotRef(f"{PLOT_DIR}/violation_rate.png", "Neighbour violation rate per directed feature"),
        PlotRef(f"{PLOT_DIR}/roc.png", "ROC curves on the test split"),
        PlotRef(f"{PLOT_DIR}/calibration.png", "Calibration on the test split"),
        PlotRef("optuna_history.png", "Optuna optimization history (validation AUC)"),
        PlotRef("optuna_importance.png", "Optuna parameter importances"),
    ]
    rows = {name: t.get("rows", 0) for name, t in split_validation_report.get("tables", {}).items()}
    chosen = {"*": {"loss": best_params.get("loss"), "lambda": best_params.get("weight"), "margin": best_params.get("margin")}}
    if best_params.get("loss") in ("infonce", "bpr"):
        chosen["*"]["tau"] = best_params.get("temperature")
    notes = [
        f"λ and margin come from the Optuna study `{best_params.get('study', '?')}` ({best_params.get('n_trials', 0)} trials, "
        f"{best_params.get('source', '?')}); every backbone's CCSS model uses them, and its baseline (λ = 0) shares all other settings."
    ]
    context = ReportContext(
        title=f"CCSS evaluation — {spec.source or 'data'}",
        source=spec.source or "unknown",
        rows_per_split=rows,
        directed_features={f.name: f.direction for f in spec.directed},
        backbones=backbones,
        results=results,
        chosen_params=chosen,
        plots=plots,
        split_note="time-ordered: every validation event is later than every train event, every test event later still",
        notes=notes,
        eps=evaluation.eps,
    )
    return render_report(context)
