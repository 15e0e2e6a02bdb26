"""test rows + trained models → what-if curves (table) → one plot per row. Run: kedro run --pipelines=what_if."""

from kedro.pipeline import Node, Pipeline

from ccss_pipeline.pipelines.node_functions import NodeFunctions

NAMESPACE = "what_if"
nodes = NodeFunctions(f"{__package__}.nodes")  # imported when a node runs (PyTorch, matplotlib)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.what_if_curves,
                inputs=["test_model_input", "feature_spec", "trained_models", "params:evaluation"],
                outputs="what_if_curves",
                name="what_if_curves",
            ),
            Node(
                nodes.plot_what_if_curves,
                inputs=["what_if_curves", "feature_spec"],
                outputs="what_if_plots",
                name="plot_what_if_curves",
            ),
        ],
        namespace=NAMESPACE,
        prefix_datasets_with_namespace=False,
    )
