"""trained models + feature spec → the chosen CCSS model per backbone as ONNX + its encoding (``onnx_models``).

Not part of ``__default__``: run it after training with ``kedro run --pipelines=export``.
"""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

#: kedro-viz groups the nodes of this stage under this name; datasets keep their catalog names.
NAMESPACE = "export"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when the node runs (PyTorch, ONNX)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.export_onnx_models,
                inputs=["trained_models", "feature_spec", "params:model_training"],
                outputs="onnx_models",
                name="export_onnx_models",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
