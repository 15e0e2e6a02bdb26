"""What one fit is given, what its settings decide before it runs, and the batches it trains on.

- :class:`FitJob`: the spec, the splits, the three settings blocks, the pair table and the options
  (:class:`FitSettings`; :class:`FitOptions` is their keyword form, :func:`~ccss_pipeline.model.trainer.train_model`'s);
- :class:`FitPlan`: the method, whether the batches carry pairs and the method's term is added, a
  rank's batch size, and what the fit's checkpoint must match;
- :class:`BatchSource`: a rank's batches of each epoch, from the split held on the device or streamed
  from parquet.

The loop that runs them is :class:`~ccss_pipeline.model.trainer.Trainer`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.model.batches import Batch, device_batches, device_tensors, streamed_batches
from ccss_pipeline.model.checkpoint import fit_fingerprint, pairs_digest
from ccss_pipeline.model.methods import CCSS, MonotonicityMethod
from ccss_pipeline.model.streaming import ParquetModelInput
from ccss_pipeline.model.synthesis import PairLookup, PairTable, draw_pairs
from ccss_pipeline.spec import FeatureSpec, ModelInputs


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
    train: ModelInputs | ParquetModelInput
    valid: ModelInputs | ParquetModelInput
    backbone: BackboneConfig
    contrastive: ContrastiveConfig
    optimizer: OptimizerConfig
    pairs: PairTable | None = None
    options: FitSettings = FitSettings()

    @property
    def streamed(self) -> bool:
        return isinstance(self.train, ParquetModelInput)


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
        if job.streamed and use_pairs and o.shapley_p is None:
            raise ValueError("training streamed from parquet draws its pairs per batch: it needs shapley_p")
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


# --------------------------------------------------------------------------------------- the batches
@dataclass
class BatchSource:
    """A rank's batches of each epoch: slices of a seeded permutation of the split held on the device (its
    pairs gathered from a lookup, redrawn each epoch where asked), or streamed from parquet with the
    pairs drawn per block of batches."""

    job: FitJob
    plan: FitPlan
    device: torch.device
    shard: tuple[int, int]  # (rank, world size)
    tensors: tuple[torch.Tensor, ...] | None = None
    lookup: PairLookup | None = None

    @classmethod
    def of(cls, job: FitJob, plan: FitPlan, device: torch.device, shard: tuple[int, int]) -> BatchSource:
        memory = job.train if isinstance(job.train, ModelInputs) else None
        tensors = device_tensors(memory, device) if memory is not None else None
        gathered = plan.pairs if plan.use_pairs and not job.streamed else None  # else drawn per block
        lookup = PairLookup(gathered, len(job.train), job.spec, device) if gathered is not None else None
        return cls(job, plan, device, shard, tensors, lookup)

    def redraw(self, epoch: int) -> None:
        """Redraw the in-memory split's pairs for ``epoch`` (seeded by the run seed and the epoch), if asked."""
        o, train = self.job.options, self.job.train
        if not (self.plan.use_pairs and o.redraw_pairs_each_epoch and o.shapley_p is not None):
            return
        if isinstance(train, ModelInputs):
            seed = self.job.optimizer.seed * 100_003 + epoch
            drawn = draw_pairs(
                train.bucket, train.dense, train.label, self.job.spec, o.shapley_p, seed=seed, move=self.plan.move
            )
            self.lookup = PairLookup(drawn, len(train), self.job.spec, self.device)

    def batches(self, epoch: int) -> Iterator[Batch]:
        """This rank's batches of ``epoch`` (its permutation, or its stream, seeded by the run seed and the epoch)."""
        rank, world = self.shard
        seed, bs = self.job.optimizer.seed, self.plan.batch_size
        if self.tensors is not None:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(len(self.job.train), generator=gen).to(self.device)
            if world > 1:
                perm = perm[rank::world]  # this rank's shard of the epoch
            return device_batches(self.tensors, perm, bs, self.lookup, self.plan.pair_rows)
        streamed = self.job.train
        assert isinstance(streamed, ParquetModelInput)  # train is one of the two kinds
        o = self.job.options
        pair_rows = self.plan.pair_rows if self.plan.use_pairs else 0
        buffer = o.stream_buffer_rows
        spec, move = self.job.spec, self.plan.move
        return streamed_batches(
            streamed, spec, bs, seed, epoch, buffer, self.device, pair_rows, o.shapley_p, move, shard=self.shard
        )
