"""An epoch's training batches, from device-resident tensors or streamed from parquet, with their pairs.

Hot-path rules: in memory, the split lives on the device as tensors (moved once) and batches are index
slices of a seeded permutation, their pairs gathered from per-row lookup tensors with static shapes,
so nothing forces a host sync on CUDA. Streamed (:mod:`ccss_pipeline.model.streaming`), batches come from
parquet row groups through a seeded shuffle buffer and their pairs are drawn as they come. Either way
the step sees the same :class:`Batch`, from a :class:`BatchSource` that the split itself builds
(:meth:`~ccss_pipeline.model.training_data.TrainingData.batch_source`) from a fit's :class:`BatchSettings`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ccss_pipeline.model.synthesis import PairBatch, PairLookup, PairTable, draw_pairs
from ccss_pipeline.spec import FeatureSpec, ModelInputs

#: batches whose pairs are drawn in one call on the streaming path (one draw per batch costs ~20% throughput)
PAIR_BLOCK = 64


@dataclass(frozen=True)
class Batch:
    """One training batch on the device; ``pairs`` belong to its first ``len(pairs)`` rows (None: no CCSS)."""

    cat: torch.Tensor
    dense: torch.Tensor
    bucket: torch.Tensor
    label: torch.Tensor
    pairs: PairBatch | None


@dataclass(frozen=True)
class BatchSettings:
    """What a split needs of a fit to cut its batches: decided once by the fit's plan
    (:meth:`~ccss_pipeline.model.fit_plan.FitPlan.batch_settings`), so neither kind of split reads the
    fit's settings blocks itself.

    ``seed``: the run seed (each epoch's order and pairs derive from it and the epoch); ``batch_size``:
    a rank's batch; ``use_pairs``: the batches carry pairs, for their first ``pair_rows`` rows; ``pairs``:
    the table an in-memory split gathers them from (None: none, or drawn); ``shapley_p`` and ``move``:
    what pairs are drawn from (a redraw, or a streamed split's blocks); ``redraw_each_epoch``: an
    in-memory split redraws its pairs each epoch; ``buffer_rows``: a streamed split's shuffle buffer;
    ``shard``: (rank, world size)."""

    spec: FeatureSpec
    seed: int
    batch_size: int
    use_pairs: bool
    pair_rows: int
    pairs: PairTable | None
    shapley_p: np.ndarray | None
    move: str
    redraw_each_epoch: bool
    buffer_rows: int
    device: torch.device
    shard: tuple[int, int] = (0, 1)


class BatchSource(Protocol):
    """A rank's batches of each epoch, as a split gives them to one fit."""

    def redraw(self, epoch: int) -> None:
        """Prepare ``epoch``'s pairs where the split redraws them before the epoch (else nothing)."""
        ...

    def batches(self, epoch: int) -> Iterator[Batch]:
        """This rank's batches of ``epoch``, seeded by the run seed and the epoch."""
        ...


def to_device(a: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # a read-only array (a column of a parquet-backed frame) is copied once; torch cannot share it
    return torch.as_tensor(np.require(a, requirements=["C", "W"]), dtype=dtype).to(device)


def device_tensors(inputs: ModelInputs, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(cat, dense, bucket, label) of a split held in memory, moved to ``device`` once."""
    return (
        to_device(inputs.cat, torch.long, device),
        to_device(inputs.dense, torch.float32, device),
        to_device(inputs.bucket, torch.long, device),
        to_device(inputs.label, torch.float32, device),
    )


def device_batches(
    tensors: tuple[torch.Tensor, ...], perm: torch.Tensor, batch_size: int, lookup: PairLookup | None, n_pair_rows: int
) -> Iterator[Batch]:
    """Batches as index slices of a permutation of device-resident tensors (the in-memory path)."""
    cat, dense, bucket, label = tensors
    for start in range(0, perm.shape[0], batch_size):
        idx = perm[start : start + batch_size]
        pairs = None if lookup is None else lookup.gather(idx[: min(n_pair_rows, idx.shape[0])])
        yield Batch(cat[idx], dense[idx], bucket[idx], label[idx], pairs)


def streamed_batches(rows: Iterable[ModelInputs], settings: BatchSettings, epoch: int) -> Iterator[Batch]:
    """Batches of rows read from parquet (``rows``: the shuffle buffer's batches), their pairs drawn as
    they come (the streaming path): for the first ``settings.pair_rows`` rows of each batch where the
    batches carry pairs, ``PAIR_BLOCK`` batches at a time, seeded by (seed, epoch, block) and, on a rank
    of several, the rank."""
    block: list[ModelInputs] = []
    n_blocks = 0
    for batch in rows:
        block.append(batch)
        if len(block) == PAIR_BLOCK:
            yield from _block_with_pairs(block, n_blocks, settings, epoch)
            block, n_blocks = [], n_blocks + 1
    if block:
        yield from _block_with_pairs(block, n_blocks, settings, epoch)


def _block_pairs(block: list[ModelInputs], number: int, settings: BatchSettings, epoch: int) -> PairLookup:
    """The pairs of a block's first ``pair_rows`` rows of each batch, drawn in one call; row ``i`` of the
    lookup is row ``i`` of the batches' heads laid end to end."""
    if settings.shapley_p is None:
        raise ValueError("pairs drawn per batch need shapley_p (the feature-draw probabilities)")
    heads = [b.take(slice(0, min(settings.pair_rows, len(b)))) for b in block]
    rank, world = settings.shard
    stream = [int(settings.seed), int(epoch), int(number)] + ([int(rank)] if world > 1 else [])
    drawn = draw_pairs(
        np.concatenate([h.bucket for h in heads]),
        np.concatenate([h.dense for h in heads]),
        np.concatenate([h.label for h in heads]),
        settings.spec,
        settings.shapley_p,
        seed=np.random.default_rng(stream),
        move=settings.move,
    )
    return PairLookup(drawn, sum(len(h) for h in heads), settings.spec, settings.device)


def _block_with_pairs(block: list[ModelInputs], number: int, settings: BatchSettings, epoch: int) -> Iterator[Batch]:
    """Block ``number``'s batches on the device, each with the pairs of its head (none without pairs)."""
    device = settings.device
    with_pairs = settings.use_pairs and settings.pair_rows > 0
    lookup = _block_pairs(block, number, settings, epoch) if with_pairs else None
    heads = [min(settings.pair_rows, len(b)) if with_pairs else 0 for b in block]
    offsets = np.cumsum([0] + heads)
    for i, batch in enumerate(block):
        pairs = None if lookup is None else lookup.gather(slice(int(offsets[i]), int(offsets[i + 1])))
        yield Batch(
            to_device(batch.cat, torch.long, device),
            to_device(batch.dense, torch.float32, device),
            to_device(batch.bucket, torch.long, device),
            to_device(batch.label, torch.float32, device),
            pairs,
        )
