"""The typed evaluation result, the one GAUC rule and the figure set both documents embed."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pandas as pd

from ccss_pipeline.evaluation.figures import EvaluationFigures, FigureSet, figure_png
from ccss_pipeline.evaluation.plots import message_figure, plot_calibration
from ccss_pipeline.evaluation.presentation import (
    NO_BOTH_CLASSES_GAUC,
    NO_USER_GAUC,
    ONE_USER_GAUC,
    gauc_note,
    ice_path,
    plot_path,
)
from ccss_pipeline.evaluation.results import OUTPUTS, EvaluationResult, ModelEvaluation
from ccss_pipeline.pipelines.evaluation.pipeline import create_pipeline


def test_the_evaluation_node_hands_the_results_fields_to_the_catalog_in_order():
    node = next(n for n in create_pipeline().nodes if n.name.endswith("evaluate_accuracy_and_monotonicity"))
    assert node.outputs == list(OUTPUTS)
    names = [f.name for f in fields(EvaluationResult)]
    assert names[0] == "models" and OUTPUTS[0] == "evaluation_results" and names[1:] == list(OUTPUTS[1:])


def test_a_model_evaluation_is_its_json_record():
    model = ModelEvaluation("dnn", "ccss", 1, "straddle", {"auc": 0.7, "gauc": math.nan, "gauc_note": "x"})
    record = model.record()
    assert list(record) == [f.name for f in fields(ModelEvaluation)]
    assert ModelEvaluation.from_record(record) == model
    older = ModelEvaluation.from_record({"backbone": "dnn", "variant": "baseline", "seed": 0, "retired": 1})
    assert older.accuracy == {} and older.direction_agreement is None


def test_one_gauc_rule_for_a_model_and_for_the_documents():
    fresh = {"auc": 0.7, "gauc": 0.65, "gauc_groups": 40, "n_groups": 50}
    assert gauc_note(True, [fresh]) == ""
    assert gauc_note(False, [fresh]) == NO_USER_GAUC  # no user column: whatever the figures say
    assert gauc_note(True, [{**fresh, "n_groups": 1}]) == ONE_USER_GAUC  # it would only repeat the AUC
    assert gauc_note(True, [{**fresh, "gauc_groups": 0, "gauc": math.nan}]) == NO_BOTH_CLASSES_GAUC
    # the documents read every model's recorded accuracy: GAUC is shown when one model has it ...
    recorded = [{"gauc": math.nan, "gauc_note": ONE_USER_GAUC}, {"gauc": 0.7, "n_groups": 9, "gauc_groups": 9}]
    assert gauc_note(True, recorded) == ""
    # ... else the first recorded reason; a record without one (older runs) reads as no user with both classes
    assert gauc_note(True, recorded[:1]) == ONE_USER_GAUC
    assert gauc_note(True, [{"gauc": None}]) == NO_BOTH_CLASSES_GAUC
    assert gauc_note(True, [{"gauc": 0.7}]) == "" and gauc_note(True, []) == ""


def test_the_figure_set_holds_first_renders_and_leaves_the_figures_unrendered():
    """A constrained-layout figure may render differently the second time, so the set renders copies:
    its bytes and the catalog's file (the figure itself, rendered afterwards) are both a first render."""
    pred = [0.551389, 0.563749, 0.569478, 0.577629, 0.584683, 0.593757, 0.604367, 0.616608, 0.632462, 0.667938]
    observed = [13, 15, 13, 10, 11, 9, 12, 16, 13, 15]  # of 30 rows per bin: an untrained model's curve
    table = pd.DataFrame({"prob_pred": pred, "prob_true": np.divide(observed, 30), "prob_pred_uncalibrated": pred})

    def calibration():
        return plot_calibration({"dnn baseline": table})

    def drawn() -> EvaluationFigures:
        notes = {name: message_figure(name) for name in ("ice_dnn_x.png",)}
        return EvaluationFigures(notes, {}, message_figure("bars"), message_figure("roc"), calibration())

    figures = drawn()  # (the calibration figure of this table renders differently the second time)
    embedded = figures.figure_set()
    fresh = {path: figure_png(fig) for path, fig in drawn().by_path().items()}
    assert (
        set(embedded.pngs)
        == set(fresh)
        == {ice_path("dnn", "x"), *(plot_path(n) for n in ("violation_rate", "roc", "calibration"))}
    )
    assert all(embedded.png(path) == png for path, png in fresh.items())
    assert figure_png(figures.calibration) == fresh[plot_path("calibration")]  # what the catalog then writes
    with_optuna = FigureSet().with_images({"dnn_pareto.png": b"png"}, "plots/optuna")
    assert with_optuna.png("plots/optuna/dnn_pareto.png") == b"png" and with_optuna.png("plots/roc.png") is None
