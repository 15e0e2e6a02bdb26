"""rows to score → GX report (always saved; every chunk) → gate, then per chunk: join, log features from
the training log, scores of the chosen model per backbone. Run: kedro run --pipelines=score (after a run)."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

NAMESPACE = "score"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when a node runs (PyTorch)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.validate_rows_to_score,
                inputs=["score_source", "params:schema", "params:data_validation"],
                outputs="score_validation_report",
                name="validate_rows_to_score",
            ),
            Node(
                nodes.score_rows,
                inputs=[
                    "score_source",
                    "score_validation_report",
                    "interactions",
                    "feature_spec",
                    "trained_models",
                    "params:schema",
                    "params:model_training",
                ],
                outputs="scores",
                name="score_rows",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
