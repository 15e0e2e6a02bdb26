"""test rows + trained models → what-if curves (table) → one plot per row. Run: kedro run --pipelines=what_if."""

from kedro.pipeline import Node, Pipeline

from .nodes import plot_what_if_curves, what_if_curves

NAMESPACE = "what_if"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                what_if_curves,
                inputs=["test_model_input", "feature_spec", "trained_models", "params:evaluation"],
                outputs="what_if_curves",
                name="what_if_curves",
                namespace=NAMESPACE,
            ),
            Node(
                plot_what_if_curves,
                inputs=["what_if_curves", "feature_spec"],
                outputs="what_if_plots",
                name="plot_what_if_curves",
                namespace=NAMESPACE,
            ),
        ]
    )
