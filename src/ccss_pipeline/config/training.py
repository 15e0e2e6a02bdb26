"""The ``model_training`` and ``counterfactual_pairs`` parameters: backbone, loss, budget, methods, pairs."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ccss_pipeline.config.base import SearchRange, Seed, StrictConfig, inside_data_folder
from ccss_pipeline.config.search import SearchConfig


class BackboneConfig(StrictConfig):
    """Which backbone and its size (spec §5)."""

    name: Literal["dnn", "wide_deep", "deepfm", "dcn_v2"] = "dnn"
    embedding_dim: int = Field(8, ge=1, le=256)
    hidden_units: list[Annotated[int, Field(ge=1, le=65536)]] = Field(default_factory=lambda: [128, 64], min_length=1)
    cross_layers: int = Field(2, ge=1, le=8)  # DCN-v2 only
    dropout: float = Field(0.0, ge=0, lt=1)
    embedding_init_std: float = Field(1e-2, gt=0)


class ContrastiveConfig(StrictConfig):
    """The CCSS loss (spec §4); ``weight`` = λ, 0 gives the plain BCE baseline."""

    loss: Literal["margin", "infonce", "bpr"] = "margin"
    weight: float = Field(1.0, ge=0)
    margin: float = Field(0.02, ge=0)
    temperature: float = Field(0.1, gt=0)
    anchor_on_original: bool = True
    pair_fraction: float = Field(1.0, gt=0, le=1)
    # Edge-aware moves (spec §3.6): the bucket-only and dense-only steps of a counterfactual path are
    # hinge-constrained with their own weight λ_e and margin (on logits); the centre move keeps λ and m.
    edge_weight: float = Field(2.0, ge=0)
    edge_margin: float = Field(0.003, ge=0)
    # a small table gets at least this many pairs per epoch (its pair_fraction raised, up to every row):
    # a fraction chosen for 200k rows leaves a 6,000-row table ~400 pairs an epoch, too few to reach
    # every edge; 0 = pair_fraction as it is
    min_pairs_per_epoch: int = Field(10_000, ge=0)

    def pair_fraction_for(self, n_rows: int) -> float:
        """The share of each batch with a pair when training on ``n_rows`` rows (``min_pairs_per_epoch``)."""
        if n_rows <= 0:
            return self.pair_fraction
        return max(self.pair_fraction, min(1.0, self.min_pairs_per_epoch / n_rows))


class OptimizerConfig(StrictConfig):
    """Optimisation budget shared by baseline and CCSS so the comparison is fair."""

    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(1024, ge=8)
    # a small table gets smaller batches so an epoch still takes at least this many optimiser steps
    # (never below 32 rows): 1,024-row batches give a 4,200-row training split 4 steps an epoch, and
    # its fits stop at the epoch budget undertrained; 0 = batch_size as it is
    min_batches_per_epoch: int = Field(50, ge=0)
    max_epochs: int = Field(8, ge=1, le=10_000)
    patience: int = Field(2, ge=0)  # in epochs: with several validations an epoch, patience × that many
    # validations of early stopping per epoch: fits that peak early (the default data peaks in epoch 1-2
    # and overfits after) are kept at their peak, not at the next epoch boundary. 1 = once, at its end
    validations_per_epoch: int = Field(1, ge=1, le=100)
    seed: Seed = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def batch_size_for(self, n_rows: int) -> int:
        """The batch size for a training split of ``n_rows`` rows (``min_batches_per_epoch``)."""
        if self.min_batches_per_epoch == 0 or n_rows <= 0:
            return self.batch_size
        return max(min(self.batch_size, 32), min(self.batch_size, n_rows // self.min_batches_per_epoch))


class ShapleyConfig(StrictConfig):
    """Monte-Carlo permutation Shapley importances that set CCSS's feature-draw probabilities (spec §3.1)."""

    n_samples: int = Field(2000, ge=10)  # validation rows explained
    n_permutations: int = Field(8, ge=1)
    epsilon: float = Field(1e-3, gt=0)  # floor on q_k so no drawable feature is never chosen
    seed: Seed = 0
    batch_size: int = Field(16384, ge=64)


#: Counterfactual moves (spec §3.2 and §3.6); see ``ccss_pipeline.model.moves``.
MoveName = Literal["centre", "within", "straddle", "edge", "path", "bracket", "decomposed"]


class PairsConfig(StrictConfig):
    """Counterfactual pair materialization (``counterfactual_pairs`` in parameters)."""

    warmup_epochs: int = Field(2, ge=1)  # the warm-up model Shapley importance is measured on
    move: MoveName = "decomposed"
    # share of pairs whose move starts from a value of the drawn feature drawn evenly over its buckets (a
    # discrete feature: over its observed values), the row's other features kept, instead of the row's
    # own value: every boundary and integer step gets constraints, not only where rows are. 0 = the paper
    anchor_share: float = Field(0.5, ge=0, le=1)
    shapley: ShapleyConfig = ShapleyConfig()
    seed: Seed = 11
    # training rows drawn per chunk (memory: one chunk); a table within one chunk draws with ``seed`` itself
    chunk_rows: int = Field(1_000_000, ge=1)


class StreamingConfig(StrictConfig):
    """When training reads its split from parquet a row group at a time instead of holding it (issue 14).

    A training split of more than ``max_rows_in_memory`` rows is streamed through a seeded shuffle
    buffer of ``buffer_rows`` rows (pairs drawn per batch from the Shapley probabilities; validation
    scored a row group at a time); smaller ones take the in-memory fast path with the materialized
    pair table. ``max_rows_in_memory: 0`` always streams; ``null`` never does.
    """

    max_rows_in_memory: int | None = Field(5_000_000, ge=0)
    buffer_rows: int = Field(262_144, ge=1)


class DistributedConfig(StrictConfig):
    """The final fits on several processes with DistributedDataParallel (issue 14), started by torch's
    elastic launcher (what ``torchrun`` runs): ``nproc_per_node`` workers on this machine, ``nnodes``
    machines in all (each runs the same ``kedro run``; they meet at ``master_addr:master_port`` under
    ``run_id``). ``backend``: gloo on CPU, NCCL on GPU (``auto``). One process (the default) trains
    in the Kedro process itself.
    """

    nproc_per_node: int = Field(1, ge=1, le=64)
    nnodes: int = Field(1, ge=1)
    master_addr: str = "127.0.0.1"
    master_port: int = Field(29500, ge=0, le=65535)  # several machines only (one machine meets on a free loopback port)
    run_id: str = "ccss"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    timeout_s: int = Field(900, ge=10)  # how long the machines wait for each other

    @property
    def enabled(self) -> bool:
        return self.nproc_per_node * self.nnodes > 1


class Variant(StrEnum):
    """The two models ``model_training`` fits per backbone and seed: the λ = 0 ``baseline`` and the
    constrained ``ccss`` (trained with the configured method). A ``str`` enum: its members are the very
    strings model names, tables and JSON carry (``dnn__ccss__seed42``), so nothing written changes."""

    BASELINE = "baseline"
    CCSS = "ccss"

    @classmethod
    def of(cls, name: str) -> Variant | str:
        """The member named ``name``; any other name as it is (a model folder made by hand may carry
        another variant, which the report shows after these two)."""
        try:
            return cls(name)
        except ValueError:
            return name


#: The monotonicity methods the trainer can use (``ccss_pipeline.model.methods``; issue 27).
MethodName = Literal["ccss", "pwl", "hints"]


class PwlConfig(StrictConfig):
    """``method: pwl``, the point-wise gradient penalty (Gupta et al. 2019): λ is ``contrastive.weight``;
    this block holds only the range the search draws λ from (a gradient has another scale than CCSS's
    hinge on logit differences, so it gets its own range)."""

    weight_range: SearchRange = SearchRange(low=0.1, high=10.0)


class HintsConfig(StrictConfig):
    """``method: hints``, monotonicity hints (Sill & Abu-Mostafa 1997): λ is ``contrastive.weight``.

    ``step``: the largest move of a hinted raw value, as a share of the feature's 1%–99% training
    quantile span (the move is uniform in (0, step]); ``step_range``: its search range (null: ``step``
    is used as it is); ``weight_range``: the range the search draws λ from.
    """

    step: float = Field(0.1, gt=0, le=1)
    weight_range: SearchRange = SearchRange(low=0.1, high=10.0)
    step_range: SearchRange | None = SearchRange(low=0.02, high=0.5)

    @model_validator(mode="after")
    def _step_range_is_a_share(self) -> HintsConfig:
        r = self.step_range
        if r is not None and not 0 < r.low < r.high <= 1:
            raise ValueError(f"hints.step_range must lie in (0, 1], got low={r.low}, high={r.high}")
        return self


class TrainingConfig(StrictConfig):
    """The ``model_training`` parameters: backbones, shared budget, CCSS loss and the search."""

    backbones: list[Literal["dnn", "wide_deep", "deepfm", "dcn_v2"]] = Field(default_factory=lambda: ["dnn"])  # type: ignore[arg-type]
    backbone: BackboneConfig = BackboneConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    # the term added to BCE with weight λ = contrastive.weight (ccss_pipeline.model.methods): ccss (the
    # counterfactual pairs), pwl (a gradient penalty on the dense inputs) or hints (random raw moves up);
    # the λ = 0 baselines are the same for all three
    method: MethodName = "ccss"
    pwl: PwlConfig = PwlConfig()
    hints: HintsConfig = HintsConfig()
    contrastive: ContrastiveConfig = ContrastiveConfig()
    redraw_pairs_each_epoch: bool = False
    n_seeds: int = Field(3, ge=1, le=100)  # final fits per backbone and variant: seeds optimizer.seed + i
    search: SearchConfig = SearchConfig()
    streaming: StreamingConfig = StreamingConfig()
    distributed: DistributedConfig = DistributedConfig()
    checkpoint_dir: str = "data/06_models/checkpoints"
    # a strictly increasing map of each final model's logit fitted on validation after training (CCSS and
    # baselines alike; ccss_pipeline.model.calibration): z / T, or a·z + b with a > 0 (Platt); it keeps
    # every ranking and every monotone direction and only moves the probabilities' level and spread
    recalibration: Literal["none", "temperature", "platt"] = "temperature"

    @field_validator("checkpoint_dir")
    @classmethod
    def _checkpoints_inside_data(cls, value: str) -> str:
        return inside_data_folder(value, "checkpoint_dir")

    @model_validator(mode="after")
    def _seeds_in_range(self) -> TrainingConfig:
        last = self.optimizer.seed + self.n_seeds - 1
        if last > 2**32 - 1:
            raise ValueError(
                f"model_training.optimizer.seed + n_seeds - 1 = {last} exceeds the largest seed "
                f"{2**32 - 1}: lower optimizer.seed"
            )
        return self

    @field_validator("backbones")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("model_training.backbones must name at least one backbone")
        if len(set(value)) != len(value):
            raise ValueError(f"model_training.backbones lists a backbone twice: {value}")
        return value
