"""Training nodes: one Optuna search per backbone over λ and margin, then the final CCSS and baseline fits over seeds."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

from ccss_pipeline.config import PairsConfig, TrainingConfig
from ccss_pipeline.evaluation.plots import figure_of, message_figure
from ccss_pipeline.lineage import StaleArtifactError, require_spec
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.distributed import Fit, FitData, run_fits
from ccss_pipeline.model.epoch_limit import warn_at_epoch_limit
from ccss_pipeline.model.importance import FeatureImportance
from ccss_pipeline.model.methods import get_method, method_of
from ccss_pipeline.model.moves import get_move, move_name
from ccss_pipeline.model.persistence import BASELINE, CCSS, TrainedModel, model_key
from ccss_pipeline.model.streaming import ParquetModelInput, model_source
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.trainer import fit_recalibration
from ccss_pipeline.parquet_table import ParquetTable, as_frame
from ccss_pipeline.spec import FeatureSpec, ModelInputs
from ccss_pipeline.tuning.plots import plot_pareto_front, trials_table
from ccss_pipeline.tuning.search import SearchData, run_search
from ccss_pipeline.tuning.selection import best_parameters

Table = ParquetTable | pd.DataFrame  # the catalog hands a lazy table; tests may hand a frame


def _inputs(
    train: Table,
    valid: Table,
    spec: FeatureSpec,
    pairs: Table,
    feature_importance: FeatureImportance,
    training: TrainingConfig,
    pairs_config: PairsConfig,
) -> tuple[
    FeatureSpec, ModelInputs | ParquetModelInput, ModelInputs | ParquetModelInput, PairTable | None, np.ndarray, str
]:
    """The spec, both splits (each in memory or streamed, by size: ``streaming.max_rows_in_memory``),
    the pair table (read only when the training split is held in memory and the method uses pairs —
    only CCSS does; a streamed split draws its pairs per batch), the Shapley feature-draw probabilities
    and the counterfactual move, each checked to be built for that spec; for a method using pairs, the
    move is also checked against ``pairs_config`` (:func:`_require_configured_move`)."""
    require_spec("train_model_input", train, spec, "feature_engineering")
    require_spec("validation_model_input", valid, spec, "feature_engineering")
    require_spec("counterfactual_pairs", pairs, spec, "counterfactual_pairs")
    require_spec("feature_importance", feature_importance, spec, "counterfactual_pairs")
    limit = training.streaming.max_rows_in_memory
    train_source = model_source(train, spec, limit, "train_model_input")
    valid_source = model_source(valid, spec, limit, "validation_model_input")
    in_memory = not isinstance(train_source, ParquetModelInput)
    uses_pairs = get_method(training.method).uses_pairs
    table = PairTable.from_frame(as_frame(pairs)) if in_memory and uses_pairs else None
    shapley_p = feature_importance.draw_probabilities(spec)
    move = table.move if table is not None else _pair_move(pairs)
    if uses_pairs:
        _require_configured_move(move, pairs, pairs_config)
    return spec, train_source, valid_source, table, shapley_p, move


def _require_configured_move(move: str, pairs: Table, pairs_config: PairsConfig) -> None:
    """Refuse a pair table drawn with another move (or anchor share) than ``counterfactual_pairs`` asks for.

    Changing the move and rerunning ``model_training`` alone would otherwise train on the old pairs (and
    resume checkpoints of them) silently, reporting results for a move the configuration no longer names.
    """
    configured = get_move(move_name(pairs_config.move, pairs_config.anchor_share)).name
    if move == configured:
        return
    where = f" ({pairs.path})" if isinstance(pairs, ParquetTable) else ""
    raise StaleArtifactError(
        f"'counterfactual_pairs'{where} was drawn with the move {move!r}, but the parameters "
        f"counterfactual_pairs.move / counterfactual_pairs.anchor_share ask for {configured!r}: it is stale and "
        "is not used. Rebuild it with `kedro run --pipelines=counterfactual_pairs`, then rerun model_training "
        "(or rebuild everything out of date with `dvc repro`)."
    )


def _pair_move(pairs: Table) -> str:
    """The counterfactual move the pair table was drawn with (from its first row group when streamed)."""
    head = pairs.read_row_group(0) if isinstance(pairs, ParquetTable) and pairs.row_groups else as_frame(pairs)
    return PairTable.from_frame(head).move


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
    train_model_input: Table,
    validation_model_input: Table,
    spec: FeatureSpec,
    counterfactual_pairs: Table,
    feature_importance: FeatureImportance,
    search_storage: str | None,
    project_folder: Path,
    model_training: TrainingConfig,
    counterfactual_pairs_config: PairsConfig,
) -> tuple[dict[str, ChosenParams], pd.DataFrame, dict[str, Figure]]:
    """One Optuna study per backbone over λ and margin (τ where it applies); resumable. With
    ``model_training.method`` other than ``ccss`` the space is that method's (λ; for hints the step).

    Returns the chosen parameters per backbone, every trial (with its backbone) and the study plots.
    ``search_storage``: the database URL several workers share (Kedro credentials), or None for the
    embedded SQLite file ``search.storage_path`` under ``project_folder``. Started N times against one
    database, the workers split the trials and each returns the same result once all are finished.
    A training split larger than ``streaming.max_rows_in_memory`` is streamed by every trial.
    """
    spec, train, valid, pairs, shapley_p, move = _inputs(
        train_model_input,
        validation_model_input,
        spec,
        counterfactual_pairs,
        feature_importance,
        model_training,
        counterfactual_pairs_config,
    )
    best: dict[str, ChosenParams] = {}
    trials, plots = [], {}
    for backbone in model_training.backbones:
        study = run_search(
            SearchData(spec, train, valid, pairs, shapley_p, move),
            model_training,
            backbone,
            storage_root=project_folder,
            database_url=search_storage,
        )
        best[backbone] = best_parameters(study, model_training, spec.fingerprint)
        trials.append(trials_table(study).assign(backbone=backbone))
        plots.update(_study_plots(study, backbone, model_training.search.max_violation))
    return best, pd.concat(trials, ignore_index=True), plots


def train_final_models(
    train_model_input: Table,
    validation_model_input: Table,
    spec: FeatureSpec,
    counterfactual_pairs: Table,
    feature_importance: FeatureImportance,
    best_params: Mapping[str, ChosenParams],
    project_folder: Path,
    model_training: TrainingConfig,
    counterfactual_pairs_config: PairsConfig,
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
    spec, train, valid, pairs, shapley_p, move = _inputs(
        train_model_input,
        validation_model_input,
        spec,
        counterfactual_pairs,
        feature_importance,
        model_training,
        counterfactual_pairs_config,
    )
    for name in model_training.backbones:
        if name not in best_params:
            raise StaleArtifactError(
                f"'best_params' has no entry for backbone {name!r} (it has "
                f"{sorted(best_params)}): rebuild it with `kedro run --pipelines=model_training`"
            )
        require_spec(f"best_params[{name!r}]", best_params[name], spec, "model_training")
        if best_params[name].method != model_training.method:
            raise StaleArtifactError(
                f"'best_params' for backbone {name!r} was searched for method {best_params[name].method!r}, "
                f"the configuration trains {model_training.method!r}: rebuild it with "
                "`kedro run --pipelines=model_training`"
            )
    fits: list[Fit] = []
    variants: dict[str, str] = {}
    for name in model_training.backbones:
        chosen = best_params[name]
        method = method_of(model_training, chosen.method_params)
        ccss = model_training.contrastive.model_copy(update=chosen.tuned())
        baseline = model_training.contrastive.model_copy(update={"weight": 0.0})
        backbone = model_training.backbone.model_copy(update={"name": name})
        for i in range(model_training.n_seeds):
            optimizer = model_training.optimizer.model_copy(
                update={"learning_rate": chosen.learning_rate, "seed": model_training.optimizer.seed + i}
            )
            for variant, contrastive in ((BASELINE, baseline), (CCSS, ccss)):
                key = model_key(name, variant, optimizer.seed)
                constrained = variant == CCSS  # "ccss": the model trained with the configured method
                variants[key] = variant
                fits.append(
                    Fit(
                        key,
                        backbone,
                        contrastive,
                        optimizer,
                        with_pairs=constrained and method.uses_pairs,
                        checkpoint_dir=project_folder / model_training.checkpoint_dir / key,
                        redraw_pairs_each_epoch=model_training.redraw_pairs_each_epoch,
                        method=method if constrained else None,  # λ = 0: the same plain BCE for every method
                    )
                )
    data = FitData(spec, train, valid, pairs, shapley_p, move, model_training.streaming.buffer_rows)
    results = run_fits(fits, data, model_training.distributed)
    models: dict[str, TrainedModel] = {}
    history: dict[str, Any] = {}
    for fit in fits:
        result = results[fit.key]
        recalibration = fit_recalibration(result.model, valid, model_training.recalibration, fit.key)
        models[fit.key] = TrainedModel.of(
            result.model,
            spec,
            variants[fit.key],
            fit.optimizer.seed,
            move=move if fit.with_pairs else None,
            method=None if fit.method is None else fit.method.name,
            method_settings=None if fit.method is None else fit.method.settings(),
            contrastive=fit.contrastive,
            optimizer=fit.optimizer,
            best_epoch=result.best_epoch,
            best_val_auc=result.best_val_auc,
            recalibration=recalibration,
        )
        at_limit = warn_at_epoch_limit(models[fit.key])  # best epoch = max_epochs: likely undertrained
        history[fit.key] = {
            "best_epoch": result.best_epoch,
            "at_epoch_limit": at_limit,
            "best_val_auc": result.best_val_auc,
            "recalibration": recalibration.to_dict(),
            "epochs": result.history,
        }
    return models, history
