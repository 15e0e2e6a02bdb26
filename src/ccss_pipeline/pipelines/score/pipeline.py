"""rows to score → GX report (always saved) → gate + join + log features from the training log →
scores of the chosen model per backbone. Run: kedro run --pipelines=score (after a training run)."""

from kedro.pipeline import Node, Pipeline

from .nodes import prepare_rows_to_score, score_rows, validate_rows_to_score

NAMESPACE = "score"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                validate_rows_to_score,
                inputs=["score_source", "params:schema", "params:data_validation"],
                outputs=["score_validation_report", "score_validation_report_md"],
                name="validate_rows_to_score",
                namespace=NAMESPACE,
            ),
            Node(
                prepare_rows_to_score,
                inputs=["score_source", "score_validation_report", "interactions", "params:schema"],
                outputs="rows_to_score",
                name="prepare_rows_to_score",
                namespace=NAMESPACE,
            ),
            Node(
                score_rows,
                inputs=["rows_to_score", "feature_spec", "trained_models", "params:model_training"],
                outputs="scores",
                name="score_rows",
                namespace=NAMESPACE,
            ),
        ]
    )
