"""rows to score → GX report (always saved; every chunk) → gate, then per chunk: join, log features from
the training log, scores of the chosen model per backbone. Run: kedro run --pipelines=score (after a run)."""

from kedro.pipeline import Node, Pipeline

from .nodes import score_rows, validate_rows_to_score

NAMESPACE = "score"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                validate_rows_to_score,
                inputs=["score_source", "params:schema", "params:data_validation"],
                outputs="score_validation_report",
                name="validate_rows_to_score",
                namespace=NAMESPACE,
            ),
            Node(
                score_rows,
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
                namespace=NAMESPACE,
            ),
        ]
    )
