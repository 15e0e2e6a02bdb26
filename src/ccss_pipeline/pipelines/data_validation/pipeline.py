"""raw source → Great Expectations report (always saved) → gate → canonical interactions."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "data_validation"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when a node runs


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.validate_raw_source,
                inputs=["raw_source", "params:schema", "params:data_validation"],
                outputs="raw_validation_report",
                name="validate_raw_source",
            ),
            Node(
                nodes.gate_and_join,
                inputs=["raw_source", "raw_validation_report", "params:schema"],
                outputs="interactions",
                name="gate_and_join_raw_tables",
            ),
            Node(
                nodes.extract_source_truth,
                inputs=["raw_source", "raw_validation_report"],  # behind the gate: nothing is written past a failure
                outputs="source_truth",
                name="extract_source_truth",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
