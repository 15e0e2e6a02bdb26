"""model-ready train/validation + spec → Shapley importance → counterfactual pair table."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "counterfactual_pairs"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when a node runs (PyTorch)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.estimate_feature_importance,
                inputs=[
                    "train_model_input",
                    "validation_model_input",
                    "feature_spec",
                    "params:counterfactual_pairs",
                    "params:model_training",
                ],
                outputs="feature_importance",
                name="estimate_shapley_importance",
            ),
            Node(
                nodes.materialize_pairs,
                inputs=["train_model_input", "feature_spec", "feature_importance", "params:counterfactual_pairs"],
                outputs="counterfactual_pairs",
                name="materialize_counterfactual_pairs",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
