"""model-ready data + pairs → one Optuna search per backbone (λ, margin) → final CCSS and baseline models over seeds."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "model_training"
SEARCH_TAG = "search"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when a node runs (Optuna, PyTorch, matplotlib)


def create_search_pipeline(**kwargs) -> Pipeline:
    """The search alone (``kedro run --pipelines=search``): start it N times against one shared
    database to split the trials between N workers."""
    return create_pipeline().only_nodes_with_tags(SEARCH_TAG)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.tune_contrastive_loss,
                inputs=[
                    "train_model_input",
                    "validation_model_input",
                    "feature_spec",
                    "counterfactual_pairs",
                    "feature_importance",
                    "search_storage",
                    "project_folder",
                    "params:model_training",
                ],
                outputs=["best_params", "optuna_trials", "optuna_plots"],
                name="tune_contrastive_loss",
                tags=[SEARCH_TAG],
            ),
            Node(
                nodes.train_final_models,
                inputs=[
                    "train_model_input",
                    "validation_model_input",
                    "feature_spec",
                    "counterfactual_pairs",
                    "feature_importance",
                    "best_params",
                    "project_folder",
                    "params:model_training",
                ],
                outputs=["trained_models", "training_history"],
                name="train_ccss_and_baseline",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
