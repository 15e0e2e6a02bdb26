"""interactions → leak-free log features → split (gated) → fitted spec → model-ready tables."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

SPLITS = ("train", "validation", "test")

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "feature_engineering"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when a node runs


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.engineer_log_features,
                inputs=["interactions", "params:schema"],
                outputs="interactions_with_log_features",
                name="engineer_log_features",
            ),
            Node(
                nodes.split_interactions,
                inputs=["interactions_with_log_features", "params:feature_engineering", "params:schema"],
                outputs=[f"{s}_interactions" for s in SPLITS],
                name="split_by_time",
            ),
            Node(
                nodes.validate_split,  # data_validation's split gate
                inputs=[*(f"{s}_interactions" for s in SPLITS), "params:feature_engineering"],
                outputs="split_validation_report",
                name="validate_split",
            ),
            Node(
                nodes.fit_features,
                inputs=[
                    "train_interactions",
                    "split_validation_report",
                    "params:schema",
                    "params:feature_engineering",
                    "interactions",  # its fingerprint stamps the spec: scoring reads this log's history
                ],
                outputs="feature_spec",
                name="fit_feature_spec",
            ),
            *[
                Node(
                    nodes.make_model_input,
                    inputs=[f"{s}_interactions", "feature_spec"],
                    outputs=f"{s}_model_input",
                    name=f"make_{s}_model_input",
                )
                for s in SPLITS
            ],
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
