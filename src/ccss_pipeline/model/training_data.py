"""A split as training, the search and scoring read it: one protocol, held in memory or streamed.

Training takes a split in one of two forms: arrays held in memory (:class:`InMemoryData`, around the
:class:`~ccss_pipeline.spec.ModelInputs` every model consumes) or a parquet table read a row group at a
time (:class:`~ccss_pipeline.model.streaming.ParquetModelInput`). Both offer :class:`TrainingData`: the
length, a content digest, the labels, rows by index, chunks to score, the check of the pair options that
form allows, and the :class:`~ccss_pipeline.model.batches.BatchSource` of a fit. So the trainer, the
search, scoring and the nodes ask the split, never which form it has; :func:`training_data` is the one
place a bare ``ModelInputs`` (what tests and notebooks hand over) becomes one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ccss_pipeline.model.batches import Batch, BatchSettings, BatchSource, device_batches, device_tensors
from ccss_pipeline.model.synthesis import PairLookup, draw_pairs
from ccss_pipeline.spec import ModelInputs


class TrainingData(Protocol):
    """A split as a fit reads it (in memory, or streamed from parquet)."""

    @property
    def streamed(self) -> bool:
        """Read from parquet through a shuffle buffer: no pair table of the split; pairs drawn per batch."""
        ...

    @property
    def label(self) -> np.ndarray:
        """Every row's label (float32)."""
        ...

    def __len__(self) -> int: ...

    def digest(self) -> str:
        """What a checkpoint or a study resumes on."""
        ...

    def take(self, index: np.ndarray | slice) -> ModelInputs:
        """Rows ``index``, in that order."""
        ...

    def chunks(self) -> Iterator[ModelInputs]:
        """The whole split, in order, a bounded part at a time (what scoring reads)."""
        ...

    def check_pair_options(self, use_pairs: bool, shapley_p: np.ndarray | None) -> None:
        """Refuse pair options this form of split cannot train with."""
        ...

    def batch_source(self, settings: BatchSettings) -> BatchSource:
        """A rank's batches of each epoch of one fit."""
        ...


@dataclass(frozen=True)
class InMemoryData:
    """A split held in memory: its batches are slices of a seeded permutation of device-resident tensors,
    their pairs gathered from the fit's pair table (or redrawn each epoch)."""

    inputs: ModelInputs

    @property
    def streamed(self) -> bool:
        return False

    @property
    def label(self) -> np.ndarray:
        return self.inputs.label

    def __len__(self) -> int:
        return len(self.inputs)

    def digest(self) -> str:
        return self.inputs.digest()

    def take(self, index: np.ndarray | slice) -> ModelInputs:
        return self.inputs.take(index)

    def chunks(self) -> Iterator[ModelInputs]:
        yield self.inputs

    def check_pair_options(self, use_pairs: bool, shapley_p: np.ndarray | None) -> None:
        """Nothing to refuse: the pairs come from the fit's table, or a redraw the plan has checked."""

    def batch_source(self, settings: BatchSettings) -> MemoryBatches:
        return MemoryBatches(self.inputs, settings)


class MemoryBatches:
    """The in-memory split's batches of each epoch: the split moved to the device once, the pair table
    (where the batches carry pairs) as a per-row lookup, redrawn for an epoch where the fit asks."""

    def __init__(self, inputs: ModelInputs, settings: BatchSettings) -> None:
        self.inputs, self.settings = inputs, settings
        self.tensors = device_tensors(inputs, settings.device)
        gathered = settings.pairs if settings.use_pairs else None
        self.lookup = (
            PairLookup(gathered, len(inputs), settings.spec, settings.device) if gathered is not None else None
        )

    def redraw(self, epoch: int) -> None:
        """Redraw the pairs for ``epoch`` (seeded by the run seed and the epoch), if asked."""
        s, inputs = self.settings, self.inputs
        if not (s.use_pairs and s.redraw_each_epoch and s.shapley_p is not None):
            return
        seed = s.seed * 100_003 + epoch
        drawn = draw_pairs(inputs.bucket, inputs.dense, inputs.label, s.spec, s.shapley_p, seed=seed, move=s.move)
        self.lookup = PairLookup(drawn, len(inputs), s.spec, s.device)

    def batches(self, epoch: int) -> Iterator[Batch]:
        """This rank's slices of ``epoch``'s permutation (seeded by the run seed and the epoch)."""
        s = self.settings
        rank, world = s.shard
        gen = torch.Generator().manual_seed(s.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.inputs), generator=gen).to(s.device)
        if world > 1:
            perm = perm[rank::world]  # this rank's shard of the epoch
        return device_batches(self.tensors, perm, s.batch_size, self.lookup, s.pair_rows)


def training_data(data: ModelInputs | TrainingData) -> TrainingData:
    """``data`` as :class:`TrainingData`: arrays in memory are wrapped, a split that already is one is
    itself. The one place the form of a split is looked at."""
    return InMemoryData(data) if isinstance(data, ModelInputs) else data
