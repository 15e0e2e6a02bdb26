"""model-ready train/validation + spec → Shapley importance → counterfactual pair table."""

from kedro.pipeline import Node, Pipeline

from .nodes import estimate_feature_importance, materialize_pairs

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "counterfactual_pairs"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                estimate_feature_importance,
                inputs=[
                    "train_model_input",
                    "validation_model_input",
                    "feature_spec",
                    "params:counterfactual_pairs",
                    "params:model_training",
                ],
                outputs="feature_importance",
                name="estimate_shapley_importance",
                namespace=NAMESPACE,
            ),
            Node(
                materialize_pairs,
                inputs=["train_model_input", "feature_spec", "feature_importance", "params:counterfactual_pairs"],
                outputs="counterfactual_pairs",
                name="materialize_counterfactual_pairs",
                namespace=NAMESPACE,
            ),
        ]
    )
