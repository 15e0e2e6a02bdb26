"""The Optuna study's parameters (``model_training.search``): ranges, targets, pruning and workers."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ccss_pipeline.config.base import SearchRange, Seed, StrictConfig, sqlite_file_inside_data


class PrunerConfig(StrictConfig):
    """Median-style pruning on per-epoch validation AUC that one epoch's noise cannot trigger.

    A trial stops after epoch ``e > n_warmup_steps`` only when its validation AUC is below the median of
    the finished trials at the same epoch by more than ``min_delta`` (and at least ``n_startup_trials``
    trials have finished). Optuna's own pruners do not support multi-objective studies.
    """

    enabled: bool = True
    n_startup_trials: int = Field(3, ge=1)
    n_warmup_steps: int = Field(1, ge=0)
    min_delta: float = Field(0.003, ge=0)


class SearchConfig(StrictConfig):
    """The Optuna study over λ and margin (and τ for losses that have one), one per backbone.

    Two objectives on validation: AUC (maximised) and the raw-grid wrong-step share (minimised). The
    chosen trial is the best AUC among those whose wrong-step share is at most ``max_violation`` and
    whose edge-test wrong share is at most ``max_edge_violation``.
    """

    n_trials: int = Field(8, ge=0)
    n_startup_trials: int = Field(3, ge=1)  # random trials before TPE models the front
    # the last trials of n_trials bisect λ (the chosen trial's other parameters kept) down to where the
    # targets stop holding: tuning/refinement.py. At most n_trials - n_startup_trials of them.
    refine_trials: int = Field(2, ge=0)
    timeout_s: float | None = Field(None, gt=0)
    seed: Seed = 0
    study_name: str = "ccss"
    storage_path: str = "data/06_models/optuna.db"
    max_epochs: int = Field(4, ge=1)  # per-trial budget; the final fit uses optimizer.max_epochs
    weight: SearchRange = SearchRange(low=0.1, high=10.0)
    margin: SearchRange = SearchRange(low=1e-3, high=0.1)
    temperature: SearchRange = SearchRange(low=0.05, high=1.0)
    learning_rate: SearchRange | None = None
    max_violation: float = Field(0.005, ge=0, le=1)  # target raw-grid wrong-step share on validation
    # ... and target validation edge-test wrong share (what a user moving a value across a bucket edge
    # sees); null: not a target. Both enter TPE as constraints (``constraints_func``) and the selection.
    max_edge_violation: float | None = Field(0.01, ge=0, le=1)
    # among the trials that meet both targets, the smallest λ whose validation AUC is within this of the
    # best of them is chosen (tuning/selection.py: validation AUC cannot see the AUC a stronger λ pays);
    # 0: the best validation AUC
    auc_tolerance: float = Field(0.0005, ge=0, le=1)
    # optional ranges of the edge constraints' weight (× λ) and margin and of the share of each batch
    # with a pair; null: the value in ``model_training.contrastive`` is used, not searched
    edge_weight: SearchRange | None = None
    edge_margin: SearchRange | None = None
    pair_fraction: SearchRange | None = None
    violation_rows: int = Field(1000, ge=100)  # validation rows the raw-grid share is measured on
    grid_levels: int = Field(100, ge=3, le=10_000)  # quantile levels of the validation raw grid
    pruner: PrunerConfig = PrunerConfig()
    # Several workers on one study (a database URL in the catalog's ``search_storage``): a worker that dies
    # stops its trial's heartbeat; after ``stale_after_s`` another worker fails that trial and runs it again
    # (up to ``max_retry`` times), so no trial is lost.
    heartbeat_s: int = Field(5, ge=1)
    stale_after_s: int = Field(30, ge=2)
    max_retry: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _stale_after_heartbeats(self) -> SearchConfig:
        if self.stale_after_s <= self.heartbeat_s:
            raise ValueError(
                f"search.stale_after_s ({self.stale_after_s}) must be longer than search.heartbeat_s "
                f"({self.heartbeat_s}): a live worker's trial would be failed between two heartbeats"
            )
        return self

    @model_validator(mode="after")
    def _pair_fraction_is_a_share(self) -> SearchConfig:
        if self.pair_fraction is not None and not 0 < self.pair_fraction.low < self.pair_fraction.high <= 1:
            raise ValueError(
                f"search.pair_fraction must lie in (0, 1], got low={self.pair_fraction.low}, "
                f"high={self.pair_fraction.high}"
            )
        return self

    @model_validator(mode="after")
    def _startup_below_trials(self) -> SearchConfig:
        if self.n_trials > 1 and self.n_startup_trials >= self.n_trials:
            raise ValueError(
                f"search.n_startup_trials ({self.n_startup_trials}) must be smaller than search.n_trials "
                f"({self.n_trials}): otherwise every trial is a random draw and the sampler never searches"
            )
        return self

    @field_validator("storage_path")
    @classmethod
    def _inside_data(cls, value: str) -> str:
        return sqlite_file_inside_data(value, "storage_path")
