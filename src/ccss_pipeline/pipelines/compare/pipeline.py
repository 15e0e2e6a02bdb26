"""model-ready data + pairs → every monotonicity method tuned, fitted over seeds and measured on test → one table.

Not part of the default run (``kedro run --pipelines=compare``): it tunes and fits every compared
method, several times the training stage's work."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "compare"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when the node runs (Optuna, PyTorch)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.comparison_data,
                inputs=[
                    "train_model_input",
                    "validation_model_input",
                    "test_model_input",
                    "feature_spec",
                    "counterfactual_pairs",
                    "feature_importance",
                    "params:compare",
                ],
                outputs="compare_data",
                name="comparison_data",
            ),
            Node(
                nodes.compare_monotonicity_methods,
                inputs=[
                    "compare_data",
                    "search_storage",
                    "project_folder",
                    "params:model_training",
                    "params:evaluation",
                    "params:compare",
                ],
                outputs=["methods_compared", "methods_compared_seeds", "methods_compared_md"],
                name="compare_monotonicity_methods",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
