"""test split + trained models → accuracy and monotonicity per model → over seeds → plots → report, card."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.evaluation.outputs import OUTPUTS  # the fields of the typed EvaluationResult, in order
from ccss_pipeline.pipelines.node_functions import NodeFunctions

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "evaluation"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when a node runs (PyTorch, scikit-learn, matplotlib)

#: the tables the figures are drawn from, then the spec (axes name its label)
PLOT_INPUTS = [
    "raw_grid_curves",
    "partial_dependence",
    "raw_grid_per_feature",
    "roc_curves",
    "calibration_curves",
    "feature_spec",
]
PLOT_OUTPUTS = [
    "raw_grid_plots",
    "partial_dependence_plots",
    "violation_rate_plot",
    "roc_plot",
    "calibration_plot",
    "evaluation_figures",  # their PNG bytes, in memory: the report and the card embed them
]
#: what the report and the card both read: the stage's tables, the spec, the search's choice, the splits' rows
FINDINGS_INPUTS = [
    "evaluation_results",
    "seed_summary",
    "paired_differences",
    "raw_grid_per_feature",
    "monotonicity_per_feature",
    "feature_spec",
    "best_params",
    "split_validation_report",
]
REPORT_INPUTS = [
    "evaluation_findings",
    "evaluation_figures",
    "optuna_plot_images",  # written by model_training (the search), embedded as they are
    "params:evaluation",
    "params:feature_engineering",  # the split mode: how the report words the split
]
CARD_INPUTS = [
    "evaluation_findings",
    "evaluation_figures",  # the ICE figures, embedded in the HTML card
    # each split's time range (event_ts) when the schema declares a timestamp
    "train_model_input",
    "validation_model_input",
    "test_model_input",
    "project_lineage",  # git commit, dirty tree, dvc.lock, environment (read-only)
    "parameters",  # all parameters: hashed into the card
    "params:evaluation",
]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.evaluate_models,
                inputs=["test_model_input", "feature_spec", "trained_models", "source_truth", "params:evaluation"],
                outputs=list(OUTPUTS),
                name="evaluate_accuracy_and_monotonicity",
            ),
            Node(
                nodes.aggregate_over_seeds,
                inputs="seed_metrics",
                outputs=["seed_summary", "paired_differences", "metrics"],
                name="aggregate_over_seeds",
            ),
            Node(nodes.plot_evaluation, inputs=PLOT_INPUTS, outputs=PLOT_OUTPUTS, name="plot_evaluation"),
            Node(
                nodes.collect_findings,
                inputs=FINDINGS_INPUTS,
                outputs="evaluation_findings",  # in memory: what the report and the card both read
                name="collect_findings",
            ),
            Node(nodes.write_report, inputs=REPORT_INPUTS, outputs=["report_md", "report_html"], name="write_report"),
            Node(
                nodes.write_model_card,
                inputs=CARD_INPUTS,
                outputs=["model_card_md", "model_card_html"],
                name="write_model_card",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
