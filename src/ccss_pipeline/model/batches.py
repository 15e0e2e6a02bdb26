"""An epoch's training batches, from device-resident tensors or streamed from parquet, with their pairs.

Hot-path rules: in memory, the split lives on the device as tensors (moved once) and batches are index
slices of a seeded permutation, their pairs gathered from per-row lookup tensors with static shapes,
so nothing forces a host sync on CUDA. Streamed (:mod:`ccss_pipeline.model.streaming`), batches come from
parquet row groups through a seeded shuffle buffer and their pairs are drawn as they come. Either way
the step sees the same :class:`Batch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ccss_pipeline.model.streaming import ParquetModelInput, shuffled_batches
from ccss_pipeline.model.synthesis import PairBatch, PairLookup, draw_pairs
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


def streamed_batches(
    source: ParquetModelInput,
    spec: FeatureSpec,
    batch_size: int,
    seed: int,
    epoch: int,
    buffer_rows: int,
    device: torch.device,
    n_pair_rows: int,
    shapley_p: np.ndarray | None,
    move: str,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Batch]:
    """Batches read from parquet through the shuffle buffer, their pairs drawn as they come (the
    streaming path): for the first ``n_pair_rows`` rows of each batch (0: none), ``PAIR_BLOCK`` batches
    at a time, seeded by (seed, epoch, block) and, on a rank of several, the rank. ``shard``: (rank, world size)."""
    block: list[ModelInputs] = []
    n_blocks = 0
    for batch in shuffled_batches(source, batch_size, seed, epoch, max(buffer_rows, batch_size), shard=shard):
        block.append(batch)
        if len(block) == PAIR_BLOCK:
            yield from _block_with_pairs(
                block, n_blocks, spec, seed, epoch, device, n_pair_rows, shapley_p, move, shard
            )
            block, n_blocks = [], n_blocks + 1
    if block:
        yield from _block_with_pairs(block, n_blocks, spec, seed, epoch, device, n_pair_rows, shapley_p, move, shard)


def _block_with_pairs(
    block: list[ModelInputs],
    number: int,
    spec: FeatureSpec,
    seed: int,
    epoch: int,
    device: torch.device,
    n_pair_rows: int,
    shapley_p: np.ndarray | None,
    move: str,
    shard: tuple[int, int],
) -> Iterator[Batch]:
    lookup, offsets = None, [0]
    if n_pair_rows > 0:
        if shapley_p is None:
            raise ValueError("pairs drawn per batch need shapley_p (the feature-draw probabilities)")
        heads = [b.take(slice(0, min(n_pair_rows, len(b)))) for b in block]
        offsets = list(np.cumsum([0] + [len(h) for h in heads]))
        stream = [int(seed), int(epoch), int(number)] + ([int(shard[0])] if shard[1] > 1 else [])
        drawn = draw_pairs(
            np.concatenate([h.bucket for h in heads]),
            np.concatenate([h.dense for h in heads]),
            np.concatenate([h.label for h in heads]),
            spec,
            shapley_p,
            seed=np.random.default_rng(stream),
            move=move,
        )
        lookup = PairLookup(drawn, offsets[-1], spec, device)
    for i, batch in enumerate(block):
        pairs = None if lookup is None else lookup.gather(slice(int(offsets[i]), int(offsets[i + 1])))
        yield Batch(
            to_device(batch.cat, torch.long, device),
            to_device(batch.dense, torch.float32, device),
            to_device(batch.bucket, torch.long, device),
            to_device(batch.label, torch.float32, device),
            pairs,
        )
