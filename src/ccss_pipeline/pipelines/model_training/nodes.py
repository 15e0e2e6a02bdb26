"""Training nodes: one Optuna search per backbone over λ and margin, then the final CCSS and baseline fits over seeds."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances  # noqa: E402

from ccss_pipeline.config import TrainingConfig  # noqa: E402
from ccss_pipeline.evaluation.plots import message_figure  # noqa: E402
from ccss_pipeline.lineage import SPEC_KEY, StaleArtifactError, require_spec  # noqa: E402
from ccss_pipeline.model.persistence import model_key  # noqa: E402
from ccss_pipeline.model.search import best_parameters, plot_pareto_front, run_search, trials_table  # noqa: E402
from ccss_pipeline.model.synthesis import PairTable  # noqa: E402
from ccss_pipeline.model.trainer import train_model  # noqa: E402
from ccss_pipeline.spec import FeatureSpec, ModelInputs  # noqa: E402

BASELINE, CCSS = "baseline", "ccss"


def _inputs(train: pd.DataFrame, valid: pd.DataFrame, feature_spec: dict[str, Any], pairs: pd.DataFrame
            ) -> tuple[FeatureSpec, ModelInputs, ModelInputs, PairTable]:
    """The spec, both splits and the pair table, each checked to be built for that spec."""
    spec = FeatureSpec.from_dict(feature_spec)
    require_spec("train_model_input", train, spec, "feature_engineering")
    require_spec("validation_model_input", valid, spec, "feature_engineering")
    require_spec("counterfactual_pairs", pairs, spec, "counterfactual_pairs")
    return spec, ModelInputs.from_frame(train, spec), ModelInputs.from_frame(valid, spec), PairTable.from_frame(pairs)


def _study_plots(study: optuna.Study, backbone: str, max_violation: float) -> dict[str, Figure]:
    """Optuna's own matplotlib plots per backbone: the Pareto front (AUC vs wrong-step share), the AUC
    history and the parameter importances for AUC; a plot that needs more finished trials says so."""
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    auc = {"target": lambda t: t.values[0], "target_name": "validation AUC"}
    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental; they are stable enough
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        pareto = plot_pareto_front(study, max_violation)
        history = plot_optimization_history(study, **auc).figure if finished else message_figure("no completed trial yet")
        if len(finished) >= 2 and len({tuple(sorted(t.params.items())) for t in finished}) >= 2:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)  # sign-free, unlike PED-ANOVA
            importance = plot_param_importances(study, evaluator=evaluator, **auc).figure
        else:
            importance = message_figure("parameter importances need at least two completed trials")
    plt.close("all")  # Optuna's plots live on pyplot figures; the dataset keeps its own references
    plots = {f"{backbone}_pareto.png": pareto, f"{backbone}_history.png": history, f"{backbone}_importance.png": importance}
    for fig in plots.values():
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
    return plots


def tune_contrastive_loss(
    train_model_input: pd.DataFrame,
    validation_model_input: pd.DataFrame,
    feature_spec: dict[str, Any],
    counterfactual_pairs: pd.DataFrame,
    search_storage: str | None,
    project_folder: Path,
    model_training: TrainingConfig,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Figure]]:
    """One Optuna study per backbone over λ and margin (τ where it applies); resumable.

    Returns the chosen parameters per backbone, every trial (with its backbone) and the study plots.
    ``search_storage``: the database URL several workers share (Kedro credentials), or None for the
    embedded SQLite file ``search.storage_path`` under ``project_folder``. Started N times against one
    database, the workers split the trials and each returns the same result once all are finished.
    """
    spec, train, valid, pairs = _inputs(train_model_input, validation_model_input, feature_spec, counterfactual_pairs)
    best: dict[str, Any] = {}
    trials, plots = [], {}
    for backbone in model_training.backbones:
        study = run_search(spec, train, valid, pairs, model_training, backbone, storage_root=project_folder,
                           database_url=search_storage)
        best[backbone] = {**best_parameters(study, model_training), SPEC_KEY: spec.fingerprint}
        trials.append(trials_table(study).assign(backbone=backbone))
        plots.update(_study_plots(study, backbone, model_training.search.max_violation))
    return best, pd.concat(trials, ignore_index=True), plots


def train_final_models(
    train_model_input: pd.DataFrame,
    validation_model_input: pd.DataFrame,
    feature_spec: dict[str, Any],
    counterfactual_pairs: pd.DataFrame,
    feature_importance: dict[str, Any],
    best_params: dict[str, Any],
    project_folder: Path,
    model_training: TrainingConfig,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per backbone and seed: CCSS with that backbone's chosen parameters and its λ = 0 baseline under
    identical settings (seeds ``optimizer.seed + 0 .. n_seeds − 1``), so every figure has a spread and
    CCSS − baseline is paired on the seed.

    Each fit checkpoints every epoch under ``project_folder / checkpoint_dir`` and resumes from it
    after a kill.
    """
    spec, train, valid, pairs = _inputs(train_model_input, validation_model_input, feature_spec, counterfactual_pairs)
    require_spec("feature_importance", feature_importance, spec, "counterfactual_pairs")
    for name in model_training.backbones:
        if name not in best_params:
            raise StaleArtifactError(f"'best_params' has no entry for backbone {name!r} (it has "
                                     f"{sorted(best_params)}): rebuild it with `kedro run --pipelines=model_training`")
        require_spec(f"best_params[{name!r}]", best_params[name], spec, "model_training")
    shapley_p = np.array([feature_importance["p"][f.name] for f in spec.directed], dtype=np.float64)
    models: dict[str, dict[str, Any]] = {}
    history: dict[str, Any] = {}
    for name in model_training.backbones:
        chosen = best_params[name]
        tuned = {k: chosen[k] for k in ("weight", "margin", "temperature")}
        ccss = model_training.contrastive.model_copy(update=tuned)
        baseline = model_training.contrastive.model_copy(update={"weight": 0.0})
        backbone = model_training.backbone.model_copy(update={"name": name})
        for i in range(model_training.n_seeds):
            optimizer = model_training.optimizer.model_copy(
                update={"learning_rate": chosen["learning_rate"], "seed": model_training.optimizer.seed + i})
            for variant, contrastive in ((BASELINE, baseline), (CCSS, ccss)):
                key = model_key(name, variant, optimizer.seed)
                result = train_model(
                    spec,
                    train,
                    valid,
                    backbone,
                    contrastive,
                    optimizer,
                    pairs=pairs if variant == CCSS else None,
                    checkpoint_dir=project_folder / model_training.checkpoint_dir / key,
                    redraw_pairs_each_epoch=model_training.redraw_pairs_each_epoch and variant == CCSS,
                    shapley_p=shapley_p,
                )
                models[key] = {
                    "config": {
                        "backbone": backbone.model_dump(),
                        "variant": variant,
                        "seed": optimizer.seed,
                        "move": pairs.move if variant == CCSS else None,
                        "contrastive": contrastive.model_dump(),
                        "optimizer": optimizer.model_dump(),
                        "spec_hash": spec.fingerprint,
                        "best_epoch": result.best_epoch,
                        "best_val_auc": result.best_val_auc,
                    },
                    "state_dict": result.model.state_dict(),
                }
                history[key] = {"best_epoch": result.best_epoch, "best_val_auc": result.best_val_auc,
                                "epochs": result.history}
    return models, history
