"""The ``evaluation`` and ``compare`` parameters: how trained models are measured and compared."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from ccss_pipeline.config.base import SearchRange, Seed, StrictConfig, sqlite_file_inside_data


class WhatIfConfig(StrictConfig):
    """What-if curves (``kedro run --pipelines=what_if``): test rows by position, or a seeded sample."""

    rows: list[Annotated[int, Field(ge=0)]] | None = None  # positions in the test split; null = a seeded sample
    n_rows: int = Field(5, ge=1, le=1000)
    seed: Seed = 0
    levels: int = Field(50, ge=3, le=10_000)  # quantile levels of each directed feature's training values

    @field_validator("rows")
    @classmethod
    def _some_rows(cls, value: list[int] | None) -> list[int] | None:
        """An empty list would draw no curve: the run would replace what_if.csv by an empty table beside
        the previous run's plots (and fail writing them)."""
        if value is not None and not value:
            raise ValueError(
                "evaluation.what_if.rows is an empty list: name at least one test-row position, or set it "
                "to null for a seeded sample of evaluation.what_if.n_rows rows"
            )
        return value


class EvaluationConfig(StrictConfig):
    """The ``evaluation`` parameters (spec §6)."""

    eps: float = Field(1e-6, ge=0)  # tolerance of the violation test, on probabilities
    grid_levels: int = Field(200, ge=3, le=10_000)  # quantile levels of the raw-value grid (headline)
    grid_rows: int = Field(2000, ge=10)  # seeded sample of test rows swept over the raw grid
    max_rows: int | None = Field(5000, ge=100)  # test rows for the bucket-centre sweeps; null = all
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    calibration_bins: int = Field(10, ge=2)
    threshold: float = Field(0.5, gt=0, lt=1)  # predicted probability at or above which a row is positive
    what_if: WhatIfConfig = WhatIfConfig()


#: The rows ``kedro run --pipelines=compare`` can put side by side (``ccss_pipeline.tuning.comparison``):
#: the λ = 0 network, the trainer's three methods, and two models monotone by construction.
ComparedMethod = Literal["baseline", "ccss", "pwl", "hints", "monotone_net", "gbdt"]
COMPARED_METHODS: tuple[ComparedMethod, ...] = ("baseline", "ccss", "pwl", "hints", "monotone_net", "gbdt")


class CompareConfig(StrictConfig):
    """The ``compare`` parameters: monotonicity methods under one protocol (issue 27).

    Every tuned row gets ``n_trials`` trials (null: ``model_training.search.n_trials``), chosen on
    validation only, then ``n_seeds`` final fits (seeds ``optimizer.seed + i``) measured on test. The
    studies live in ``storage_path`` (a file of their own: ``model_training``'s study file is that
    stage's DVC output), or in the shared database of the catalog's ``search_storage``."""

    methods: list[ComparedMethod] = Field(default_factory=lambda: list(COMPARED_METHODS))
    backbone: Literal["dnn", "wide_deep", "deepfm", "dcn_v2"] = "dnn"
    n_seeds: int = Field(5, ge=1, le=100)
    n_trials: int | None = Field(None, ge=0)
    storage_path: str = "data/06_models/optuna_compare.db"
    # the Lipschitz monotonic network's search space (the soft methods' is model_training's)
    monotone_net_learning_rate: SearchRange = SearchRange(low=1e-3, high=3e-2)
    monotone_net_lipschitz: SearchRange = SearchRange(low=0.1, high=10.0)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"compare.methods lists a method twice: {value}")
        if "baseline" not in value:
            raise ValueError(
                "compare.methods must include 'baseline': it is the reference of every row's ΔAUC and of the "
                f"networks' training time (got {value})"
            )
        return value

    @field_validator("storage_path")
    @classmethod
    def _sqlite_inside_data(cls, value: str) -> str:
        return sqlite_file_inside_data(value, "compare.storage_path")
