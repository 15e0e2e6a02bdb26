"""The monotonicity method as one pluggable choice (``model_training.method``): ``ccss`` (default),
``pwl`` and ``hints``; :mod:`.base` says what a method owns. Importing the package registers all three."""

from ccss_pipeline.model.methods.base import (
    DEFAULT_METHOD,
    BatchTerm,
    MonotonicityMethod,
    get_method,
    method_names,
    method_of,
)
from ccss_pipeline.model.methods.ccss import CCSS
from ccss_pipeline.model.methods.hints import MonotonicityHints
from ccss_pipeline.model.methods.pwl import PointwiseGradientPenalty

__all__ = [
    "CCSS",
    "DEFAULT_METHOD",
    "BatchTerm",
    "MonotonicityHints",
    "MonotonicityMethod",
    "PointwiseGradientPenalty",
    "get_method",
    "method_names",
    "method_of",
]
