"""Training nodes: one Optuna search per backbone over λ and margin, then the final CCSS and baseline fits over seeds.

Both nodes read their inputs as :class:`StageInputs` (:func:`stage_inputs`); the spec stamps of those
inputs, and the move of the pair table, are checked before either node runs (:mod:`ccss_pipeline.hooks`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

from ccss_pipeline.config import TrainingConfig
from ccss_pipeline.evaluation.plots import figure_of, message_figure
from ccss_pipeline.lineage import StaleArtifactError, require_spec
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.distributed import Fit, FitData, run_fits
from ccss_pipeline.model.epoch_limit import warn_at_epoch_limit
from ccss_pipeline.model.importance import FeatureImportance
from ccss_pipeline.model.methods import get_method, method_of
from ccss_pipeline.model.pair_check import pair_move
from ccss_pipeline.model.persistence import BASELINE, CCSS, TrainedModel, model_key
from ccss_pipeline.model.streaming import model_source
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.trainer import TrainResult, fit_recalibration
from ccss_pipeline.model.training_data import TrainingData
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import FeatureSpec
from ccss_pipeline.tuning.plots import plot_pareto_front, trials_table
from ccss_pipeline.tuning.search import SearchData, run_search
from ccss_pipeline.tuning.selection import best_parameters


@dataclass(frozen=True)
class StageInputs:
    """What both nodes train on: the spec, both splits (each in memory or streamed, by size:
    ``streaming.max_rows_in_memory``), the pair table (None: the method uses none, or the training
    split is streamed and draws its pairs per batch), the Shapley feature-draw probabilities and the
    counterfactual move."""

    spec: FeatureSpec
    train: TrainingData
    valid: TrainingData
    pairs: PairTable | None
    shapley_p: np.ndarray
    move: str

    def search_data(self) -> SearchData:
        return SearchData(self.spec, self.train, self.valid, self.pairs, self.shapley_p, self.move)

    def fit_data(self, stream_buffer_rows: int) -> FitData:
        return FitData(self.spec, self.train, self.valid, self.pairs, self.shapley_p, self.move, stream_buffer_rows)


def stage_inputs(
    train: ParquetTable,
    valid: ParquetTable,
    spec: FeatureSpec,
    pairs: ParquetTable,
    feature_importance: FeatureImportance,
    training: TrainingConfig,
) -> StageInputs:
    """The catalog's tables as training takes them. The pair table is read only when the training split
    is held in memory and the method uses pairs (only CCSS does); that its move is the configured one was
    checked before the node ran (:class:`~ccss_pipeline.hooks.PairMoveCheckHooks`)."""
    limit = training.streaming.max_rows_in_memory
    train_source = model_source(train, spec, limit, "train_model_input")
    valid_source = model_source(valid, spec, limit, "validation_model_input")
    uses_pairs = get_method(training.method).uses_pairs
    table = PairTable.from_frame(pairs.frame()) if uses_pairs and not train_source.streamed else None
    shapley_p = feature_importance.draw_probabilities(spec)
    move = table.move if table is not None else pair_move(pairs)
    return StageInputs(spec, train_source, valid_source, table, shapley_p, move)


def _study_plots(study: optuna.Study, backbone: str, max_violation: float) -> dict[str, Figure]:
    """Optuna's own matplotlib plots per backbone: the Pareto front (AUC vs wrong-step share), the AUC
    history and the parameter importances for AUC; a plot that needs more finished trials says so. The
    pyplot style is left as it was."""
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]

    def auc(t: optuna.trial.FrozenTrial) -> float:
        return float(t.values[0])

    # Optuna marks its matplotlib plots experimental (stable enough), and they switch pyplot to its ggplot
    # style for good: rc_context restores the style, so later figures of the run (the report's) look the same
    # as those of an evaluation-only run
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        pareto = plot_pareto_front(study, max_violation)
        history = (
            figure_of(plot_optimization_history(study, target=auc, target_name="validation AUC"))
            if finished
            else message_figure("no completed trial yet")
        )
        if len(finished) >= 2 and len({tuple(sorted(t.params.items())) for t in finished}) >= 2:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)  # sign-free, unlike PED-ANOVA
            importance = figure_of(
                plot_param_importances(study, evaluator=evaluator, target=auc, target_name="validation AUC")
            )
        else:
            importance = message_figure("parameter importances need at least two completed trials")
    plt.close("all")  # Optuna's plots live on pyplot figures; the dataset keeps its own references
    plots: dict[str, Figure] = {
        f"{backbone}_pareto.png": pareto,
        f"{backbone}_history.png": history,
        f"{backbone}_importance.png": importance,
    }
    for fig in plots.values():
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
    return plots


def tune_contrastive_loss(
    train_model_input: ParquetTable,
    validation_model_input: ParquetTable,
    spec: FeatureSpec,
    counterfactual_pairs: ParquetTable,
    feature_importance: FeatureImportance,
    search_storage: str | None,
    project_folder: Path,
    model_training: TrainingConfig,
) -> tuple[dict[str, ChosenParams], pd.DataFrame, dict[str, Figure]]:
    """One Optuna study per backbone over λ and margin (τ where it applies); resumable. With
    ``model_training.method`` other than ``ccss`` the space is that method's (λ; for hints the step).

    Returns the chosen parameters per backbone, every trial (with its backbone) and the study plots.
    ``search_storage``: the database URL several workers share (Kedro credentials), or None for the
    embedded SQLite file ``search.storage_path`` under ``project_folder``. Started N times against one
    database, the workers split the trials and each returns the same result once all are finished.
    A training split larger than ``streaming.max_rows_in_memory`` is streamed by every trial.
    """
    data = stage_inputs(
        train_model_input,
        validation_model_input,
        spec,
        counterfactual_pairs,
        feature_importance,
        model_training,
    ).search_data()
    best: dict[str, ChosenParams] = {}
    trials, plots = [], {}
    for backbone in model_training.backbones:
        study = run_search(data, model_training, backbone, storage_root=project_folder, database_url=search_storage)
        best[backbone] = best_parameters(study, model_training, spec.fingerprint)
        trials.append(trials_table(study).assign(backbone=backbone))
        plots.update(_study_plots(study, backbone, model_training.search.max_violation))
    return best, pd.concat(trials, ignore_index=True), plots


def train_final_models(
    train_model_input: ParquetTable,
    validation_model_input: ParquetTable,
    spec: FeatureSpec,
    counterfactual_pairs: ParquetTable,
    feature_importance: FeatureImportance,
    best_params: Mapping[str, ChosenParams],
    project_folder: Path,
    model_training: TrainingConfig,
) -> tuple[dict[str, TrainedModel], dict[str, Any]]:
    """Per backbone and seed: CCSS with that backbone's chosen parameters and its λ = 0 baseline under
    identical settings (seeds ``optimizer.seed + 0 .. n_seeds − 1``), so every figure has a spread and
    CCSS − baseline is paired on the seed. With ``model_training.method`` ``pwl`` or ``hints`` the
    constrained model is trained with that method instead (it keeps the variant name ``ccss``; its
    ``model.json`` records the method) and gets no pairs.

    Every model, CCSS and baseline alike, then gets the monotone recalibration ``recalibration``
    (none, temperature or Platt scaling of its logit) fitted on the validation split its early stopping
    used; it is stored with the model and applied wherever the model's probability is made. A fit whose
    best epoch is the last ``optimizer.max_epochs`` allows is logged as likely undertrained.

    Each fit checkpoints every epoch under ``project_folder / checkpoint_dir`` and resumes from it
    after a kill. With ``distributed.nproc_per_node`` (× ``nnodes``) above 1 the fits run on that many
    DistributedDataParallel workers started by torch's elastic launcher (:mod:`ccss_pipeline.model.distributed`).
    """
    inputs = stage_inputs(
        train_model_input,
        validation_model_input,
        spec,
        counterfactual_pairs,
        feature_importance,
        model_training,
    )
    require_chosen_params(best_params, model_training, spec)
    fits = final_fits(best_params, model_training, project_folder)
    results = run_fits(
        [f.fit for f in fits], inputs.fit_data(model_training.streaming.buffer_rows), model_training.distributed
    )
    models: dict[str, TrainedModel] = {}
    history: dict[str, Any] = {}
    for final in fits:
        key = final.fit.key
        models[key], history[key] = final.record(results[key], inputs, model_training.recalibration)
    return models, history


def require_chosen_params(best_params: Mapping[str, ChosenParams], training: TrainingConfig, spec: FeatureSpec) -> None:
    """Refuse chosen parameters that miss a configured backbone, were chosen for another spec, or were
    searched for another method than the configuration trains."""
    for name in training.backbones:
        if name not in best_params:
            raise StaleArtifactError(
                f"'best_params' has no entry for backbone {name!r} (it has "
                f"{sorted(best_params)}): rebuild it with `kedro run --pipelines=model_training`"
            )
        require_spec(f"best_params[{name!r}]", best_params[name], spec, "model_training")
        if best_params[name].method != training.method:
            raise StaleArtifactError(
                f"'best_params' for backbone {name!r} was searched for method {best_params[name].method!r}, "
                f"the configuration trains {training.method!r}: rebuild it with "
                "`kedro run --pipelines=model_training`"
            )


@dataclass(frozen=True)
class FinalFit:
    """One final fit and its variant: ``ccss`` (the configured method, with the chosen parameters) or
    ``baseline`` (λ = 0: the same plain BCE for every method)."""

    fit: Fit
    variant: str

    def record(
        self, result: TrainResult, inputs: StageInputs, recalibration_kind: str
    ) -> tuple[TrainedModel, dict[str, Any]]:
        """The trained model's record, recalibrated on the validation split, and its history entry."""
        fit = self.fit
        recalibration = fit_recalibration(result.model, inputs.valid, recalibration_kind, fit.key)
        model = TrainedModel.of(
            result.model,
            inputs.spec,
            self.variant,
            fit.optimizer.seed,
            move=inputs.move if fit.with_pairs else None,
            method=None if fit.method is None else fit.method.name,
            method_settings=None if fit.method is None else fit.method.settings(),
            contrastive=fit.contrastive,
            optimizer=fit.optimizer,
            best_epoch=result.best_epoch,
            best_val_auc=result.best_val_auc,
            recalibration=recalibration,
        )
        at_limit = warn_at_epoch_limit(model)  # best epoch = max_epochs: likely undertrained
        history = {
            "best_epoch": result.best_epoch,
            "at_epoch_limit": at_limit,
            "best_val_auc": result.best_val_auc,
            "recalibration": recalibration.to_dict(),
            "epochs": result.history,
        }
        return model, history


def final_fits(
    best_params: Mapping[str, ChosenParams], training: TrainingConfig, project_folder: Path
) -> list[FinalFit]:
    """Per backbone and seed, the baseline and the constrained fit (in that order), each checkpointed
    under ``project_folder / checkpoint_dir / <model key>``."""
    fits: list[FinalFit] = []
    for name in training.backbones:
        chosen = best_params[name]
        method = method_of(training, chosen.method_params)
        ccss = training.contrastive.model_copy(update=chosen.tuned())
        baseline = training.contrastive.model_copy(update={"weight": 0.0})
        backbone = training.backbone.model_copy(update={"name": name})
        for i in range(training.n_seeds):
            optimizer = training.optimizer.model_copy(
                update={"learning_rate": chosen.learning_rate, "seed": training.optimizer.seed + i}
            )
            for variant, contrastive in ((BASELINE, baseline), (CCSS, ccss)):
                key = model_key(name, variant, optimizer.seed)
                constrained = variant == CCSS  # "ccss": the model trained with the configured method
                fit = Fit(
                    key,
                    backbone,
                    contrastive,
                    optimizer,
                    with_pairs=constrained and method.uses_pairs,
                    checkpoint_dir=project_folder / training.checkpoint_dir / key,
                    redraw_pairs_each_epoch=training.redraw_pairs_each_epoch,
                    method=method if constrained else None,  # λ = 0: the same plain BCE for every method
                )
                fits.append(FinalFit(fit, variant))
    return fits
