"""The feature importances the counterfactual-pairs stage hands on (``feature_importance.json``).

One record: the Shapley importance q of every numerical feature, the draw probabilities p of the
directed ones (what pair synthesis and the streamed trainer draw a feature from), the warm-up fit they
were measured on, and the feature spec they belong to.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from ccss_pipeline.spec import FeatureSpec


class WarmupFit(BaseModel):
    """The short λ = 0 fit the importances were measured on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: str
    epochs: int
    val_auc: float


class FeatureImportance(BaseModel):
    """q over the numerical features, p over the directed ones, keyed by feature name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    q: dict[str, float]
    p: dict[str, float]
    warmup: WarmupFit | None = None
    spec_fingerprint: str | None = None

    def draw_probabilities(self, spec: FeatureSpec) -> np.ndarray:
        """p in the order of ``spec.directed``; a directed feature without one fails naming it."""
        missing = [f.name for f in spec.directed if f.name not in self.p]
        if missing:
            raise ValueError(
                f"feature_importance has no draw probability for directed feature(s) {missing} "
                "(rebuild it with `kedro run --pipelines=counterfactual_pairs`)"
            )
        return np.array([self.p[f.name] for f in spec.directed], dtype=np.float64)
