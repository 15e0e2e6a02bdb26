"""raw source → Great Expectations report (always saved) → gate → canonical interactions."""

from kedro.pipeline import Node, Pipeline

from .nodes import extract_source_truth, gate_and_join, validate_raw_source

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "data_validation"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                validate_raw_source,
                inputs=["raw_source", "params:schema", "params:data_validation"],
                outputs="raw_validation_report",
                name="validate_raw_source",
                namespace=NAMESPACE,
            ),
            Node(
                gate_and_join,
                inputs=["raw_source", "raw_validation_report", "params:schema"],
                outputs="interactions",
                name="gate_and_join_raw_tables",
                namespace=NAMESPACE,
            ),
            Node(
                extract_source_truth,
                inputs=["raw_source", "raw_validation_report"],  # behind the gate: nothing is written past a failure
                outputs="source_truth",
                name="extract_source_truth",
                namespace=NAMESPACE,
            ),
        ]
    )
