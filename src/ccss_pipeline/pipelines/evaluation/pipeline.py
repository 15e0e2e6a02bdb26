"""test split + trained models → accuracy and monotonicity per model → over seeds → plots → report."""

from kedro.pipeline import Node, Pipeline

from .nodes import aggregate_over_seeds, evaluate_models, plot_evaluation, write_model_card, write_report

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "evaluation"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_models,
                inputs=["test_model_input", "feature_spec", "trained_models", "source_truth", "params:evaluation"],
                outputs=[
                    "evaluation_results",
                    "monotonicity_per_feature",
                    "raw_grid_per_feature",
                    "partial_dependence",
                    "raw_grid_curves",
                    "roc_curves",
                    "calibration_curves",
                    "seed_metrics",
                ],
                name="evaluate_accuracy_and_monotonicity",
                namespace=NAMESPACE,
            ),
            Node(
                aggregate_over_seeds,
                inputs="seed_metrics",
                outputs=["seed_summary", "paired_differences", "metrics"],
                name="aggregate_over_seeds",
                namespace=NAMESPACE,
            ),
            Node(
                plot_evaluation,
                inputs=[
                    "raw_grid_curves",
                    "partial_dependence",
                    "raw_grid_per_feature",
                    "roc_curves",
                    "calibration_curves",
                    "feature_spec",
                ],
                outputs=[
                    "raw_grid_plots",
                    "partial_dependence_plots",
                    "violation_rate_plot",
                    "roc_plot",
                    "calibration_plot",
                ],
                name="plot_evaluation",
                namespace=NAMESPACE,
            ),
            Node(
                write_report,
                inputs=[
                    "evaluation_results",
                    "seed_summary",
                    "paired_differences",
                    "raw_grid_per_feature",
                    "monotonicity_per_feature",
                    "feature_spec",
                    "best_params",
                    "split_validation_report",
                    "params:evaluation",
                    "params:feature_engineering",  # the split mode: how the report words the split
                    # the curve tables again: the HTML report embeds the figures drawn from them
                    "raw_grid_curves",
                    "partial_dependence",
                    "roc_curves",
                    "calibration_curves",
                    "optuna_plot_images",  # written by model_training (the search), embedded as they are
                ],
                outputs=["report_md", "report_html"],
                name="write_report",
                namespace=NAMESPACE,
            ),
            Node(
                write_model_card,
                inputs=[
                    "seed_summary",
                    "paired_differences",
                    "raw_grid_per_feature",
                    "feature_spec",
                    "best_params",
                    "split_validation_report",
                    # each split's time range (event_ts) when the schema declares a timestamp
                    "train_model_input",
                    "validation_model_input",
                    "test_model_input",
                    "raw_grid_curves",  # the ICE figures, embedded in the HTML card
                    "project_lineage",  # git commit, dirty tree, dvc.lock, environment (read-only)
                    "parameters",  # all parameters: hashed into the card
                    "params:evaluation",
                ],
                outputs=["model_card_md", "model_card_html"],
                name="write_model_card",
                namespace=NAMESPACE,
            ),
        ]
    )
