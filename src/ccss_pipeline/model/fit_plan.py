"""What one fit is given and what its settings decide before it runs.

- :class:`FitJob`: the spec, the splits (:class:`~ccss_pipeline.model.training_data.TrainingData`, in
  memory or streamed), the three settings blocks, the pair table and the options (:class:`FitSettings`;
  :class:`FitOptions` is their keyword form, :func:`~ccss_pipeline.model.trainer.train_model`'s);
- :class:`FitPlan`: the method, whether the batches carry pairs and the method's term is added, a
  rank's batch size, what the training split's batches are cut with (:meth:`FitPlan.batch_settings`:
  the split builds its own :class:`~ccss_pipeline.model.batches.BatchSource` from them) and what the
  fit's checkpoint must match.

The loop that runs them is :class:`~ccss_pipeline.model.trainer.Trainer`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.model.batches import BatchSettings
from ccss_pipeline.model.checkpoint import fit_fingerprint, pairs_digest
from ccss_pipeline.model.methods import CCSS, MonotonicityMethod
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.training_data import TrainingData
from ccss_pipeline.spec import FeatureSpec


class FitOptions(TypedDict, total=False):
    """:func:`train_model`'s keyword options (each as :class:`FitSettings` says)."""

    checkpoint_dir: Path | str | None
    on_epoch: Callable[[int, float], None] | None
    redraw_pairs_each_epoch: bool
    shapley_p: np.ndarray | None
    move: str
    stream_buffer_rows: int
    method: MonotonicityMethod | None


@dataclass(frozen=True)
class FitSettings:
    """A fit's options, with their defaults (see :func:`train_model`).

    ``checkpoint_dir``: where the checkpoint lives (None: none); ``on_epoch(epoch, val_auc)``: runs after
    each epoch's checkpoint and may raise to stop; ``redraw_pairs_each_epoch``: redraw the pairs each
    epoch from ``shapley_p`` (the feature-draw probabilities; also what a streamed split draws its pairs
    from) with ``move`` (the move of the pair table when one is given); ``stream_buffer_rows``: the
    shuffle buffer of a streamed split; ``method``: the monotonicity method (None: CCSS)."""

    checkpoint_dir: Path | str | None = None
    on_epoch: Callable[[int, float], None] | None = None
    redraw_pairs_each_epoch: bool = False
    shapley_p: np.ndarray | None = None
    move: str = "centre"
    stream_buffer_rows: int = 262_144
    method: MonotonicityMethod | None = None


@dataclass(frozen=True)
class FitJob:
    """Everything one fit is given: the spec, the splits, the three settings blocks, the pairs, the options."""

    spec: FeatureSpec
    train: TrainingData
    valid: TrainingData
    backbone: BackboneConfig
    contrastive: ContrastiveConfig
    optimizer: OptimizerConfig
    pairs: PairTable | None = None
    options: FitSettings = FitSettings()

    @property
    def streamed(self) -> bool:
        """The training split is streamed from parquet (its pairs drawn per batch, no pair table)."""
        return self.train.streamed


# ------------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class FitPlan:
    """What a fit's settings decide before it starts.

    ``pairs``: the table its batches gather from (None for a method without pairs); ``use_pairs``: the
    batches carry counterfactual pairs (λ > 0, a pair method and pairs to gather or draw); ``use_term``:
    the method's term is added (λ = 0: the plain BCE, no extra forward); ``batch_size``: a rank's share
    of the global batch; ``pair_rows``: the rows of a batch that get a pair."""

    method: MonotonicityMethod
    pairs: PairTable | None
    use_pairs: bool
    use_term: bool
    move: str
    batch_size: int
    pair_rows: int

    @classmethod
    def of(cls, job: FitJob, world: int) -> FitPlan:
        o, lam = job.options, float(job.contrastive.weight)
        method = o.method or CCSS()
        pairs = job.pairs if method.uses_pairs else None
        drawn = o.redraw_pairs_each_epoch or (job.streamed and o.shapley_p is not None)
        use_pairs = lam > 0 and method.uses_pairs and (pairs is not None or drawn)
        if o.redraw_pairs_each_epoch and use_pairs and o.shapley_p is None:
            raise ValueError("redraw_pairs_each_epoch needs shapley_p (the feature-draw probabilities)")
        job.train.check_pair_options(use_pairs, o.shapley_p)
        n = len(job.train)
        # the global batch: W ranks take batch_size / W rows each per step, so a step (and an epoch's
        # number of steps) means what it means on one process and the optimiser settings carry over
        bs = max(1, job.optimizer.batch_size_for(n) // world)
        return cls(
            method=method,
            pairs=pairs,
            use_pairs=use_pairs,
            use_term=lam > 0 and (use_pairs or not method.uses_pairs),
            move=pairs.move if pairs is not None else o.move,
            batch_size=bs,
            pair_rows=max(1, math.ceil(job.contrastive.pair_fraction_for(n) * bs)),
        )

    def fingerprint(self, job: FitJob, world: int) -> str:
        """What this fit's checkpoint must match to resume it: settings (but ``max_epochs``), data, pairs."""
        o = job.options
        return fit_fingerprint(
            job.spec,
            job.backbone,
            job.contrastive,
            job.optimizer.model_copy(update={"max_epochs": 0}),
            extra=[
                job.train.digest(),
                job.valid.digest(),
                None if job.streamed else pairs_digest(self.pairs),
                o.redraw_pairs_each_epoch,
                self.move,
                job.streamed and o.stream_buffer_rows,
            ]
            + ([{"world_size": world}] if world > 1 else [])
            + ([self.method.fingerprint()] if self.use_term and self.method.fingerprint() else []),  # CCSS: none
        )

    def batch_settings(self, job: FitJob, device: torch.device, shard: tuple[int, int]) -> BatchSettings:
        """What the training split cuts a rank's batches with (``shard``: rank, world size)."""
        o = job.options
        return BatchSettings(
            spec=job.spec,
            seed=job.optimizer.seed,
            batch_size=self.batch_size,
            use_pairs=self.use_pairs,
            pair_rows=self.pair_rows,
            pairs=self.pairs,
            shapley_p=o.shapley_p,
            move=self.move,
            redraw_each_epoch=o.redraw_pairs_each_epoch,
            buffer_rows=o.stream_buffer_rows,
            device=device,
            shard=shard,
        )
