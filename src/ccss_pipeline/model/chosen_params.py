"""What the hyper-parameter search hands to the final fits and the report: one record per backbone.

Kept apart from :mod:`ccss_pipeline.tuning.search` so that reading the choice (the final fits, the
report, the model card) does not import Optuna and the trainer; a record of the model layer, so the
evaluation reads it without importing the search, which sits above both.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: The chosen settings are read back from a file people edit by hand (``best_params.json``): NaN or ±inf
#: would train with garbage (a NaN λ makes every loss NaN), a negative λ rewards violations. Refused on
#: load, naming the field and the file (``ChosenParamsDataset``).
Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ChosenParams(BaseModel):
    """The parameters the search chose for one backbone (``best_params.json``, one entry per backbone),
    and how: ``source`` is "trial N" or "defaults" (no completed trial; then val_auc,
    val_wrong_step_share and feasible are None); ``n_trials`` counts the study's trials in any state;
    ``spec_fingerprint`` the feature spec the search ran on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    loss: str
    weight: NonNegative
    margin: NonNegative
    temperature: Positive
    learning_rate: Positive
    source: str
    val_auc: float | None
    val_wrong_step_share: float | None
    feasible: bool | None
    max_violation: float
    study: str
    n_trials: int
    spec_fingerprint: str | None = None
    val_edge_wrong_share: float | None = None
    max_edge_violation: float | None = None
    n_feasible: int | None = None  # completed trials that met both targets
    # the validation AUC within which the weakest feasible λ was preferred (search.auc_tolerance; a file
    # written before the rule existed: None, the best feasible AUC was chosen)
    auc_tolerance: NonNegative | None = None
    # searched only when the search has a range for them (else the configured values stand)
    edge_weight: NonNegative | None = None
    edge_margin: NonNegative | None = None
    pair_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    # the monotonicity method searched (model_training.method) and the values the search chose for the
    # trial parameters of its own (hints: hint_step); a file written before methods existed is CCSS's
    method: str = "ccss"
    method_params: dict[str, Finite] = Field(default_factory=dict)

    def tuned(self) -> dict[str, float]:
        """The contrastive-loss settings the final fits take from the search."""
        optional = {
            "edge_weight": self.edge_weight,
            "edge_margin": self.edge_margin,
            "pair_fraction": self.pair_fraction,
        }
        return {
            "weight": self.weight,
            "margin": self.margin,
            "temperature": self.temperature,
            **{k: v for k, v in optional.items() if v is not None},
        }
