"""The catalog entries the evaluation node writes, in order: the one list both the typed result and the
pipeline read.

:meth:`ccss_pipeline.evaluation.results.EvaluationResult.outputs` hands its fields out in this order and
``pipelines/evaluation/pipeline.py`` wires the node's outputs from it. A module of its own that imports
nothing, so building the pipelines imports no evaluation library (scikit-learn, PyTorch).
"""

#: The evaluation node's outputs, in this order: the catalog entries of ``EvaluationResult``'s fields.
OUTPUTS = (
    "evaluation_results",
    "monotonicity_per_feature",
    "raw_grid_per_feature",
    "partial_dependence",
    "raw_grid_curves",
    "roc_curves",
    "calibration_curves",
    "seed_metrics",
)
