"""A model-ready parquet table read a row group at a time, in a seeded shuffled order (issue 14).

Training on a table larger than memory needs batches whose memory is bounded by a buffer, not by the
table, and whose order is still random and reproducible. As tf.data and WebDataset do it: each
epoch visits the row groups (shards) in an order drawn from ``(seed, epoch)``, pours them into a
shuffle buffer of ``buffer_rows`` rows, and emits batches of rows drawn from the buffer. Every row is
visited exactly once per epoch; the resident set is about ``buffer_rows`` plus one row group.

:class:`ParquetModelInput` is the streamed form of
:class:`~ccss_pipeline.model.training_data.TrainingData`; :func:`model_source` chooses the form of a split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.model.batches import Batch, BatchSettings, streamed_batches
from ccss_pipeline.model.training_data import TrainingData, training_data
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParquetModelInput:
    """A model-ready parquet table (a file, or a folder of part files) that is never loaded whole.

    Offers what training and validation need of a split without holding it
    (:class:`~ccss_pipeline.model.training_data.TrainingData`): its length, its row groups as
    :class:`ModelInputs` (the chunks scoring reads), its labels, any rows by index (:meth:`take`, a row
    group at a time), and a fit's batches read through a shuffle buffer (:class:`StreamedBatches`).
    """

    table: ParquetTable
    spec: FeatureSpec
    _columns: tuple[str, ...] = field(init=False, repr=False)

    def __init__(self, table: ParquetTable, spec: FeatureSpec) -> None:
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "spec", spec)
        needed = (
            [LABEL_COLUMN, GROUP_COLUMN]
            + [c.column for c in spec.categorical]
            + [n.dense_column for n in spec.numerical]
            + [n.bucket_column for n in spec.numerical]
        )
        present = set(self.table.columns)
        missing = [c for c in needed if c not in present]
        if missing:
            raise KeyError(
                f"{self.table.path}: model-ready table lacks columns required by the feature spec: {missing}"
            )
        object.__setattr__(self, "_columns", tuple(needed + ([ORACLE_COLUMN] if ORACLE_COLUMN in present else [])))

    @property
    def path(self) -> Path:
        return self.table.path

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def row_group_rows(self) -> tuple[int, ...]:
        return tuple(rows for _, _, rows in self.table.row_groups)

    def digest(self) -> str:
        """Keyed by the files (name, size, modification time) and the spec: what a checkpoint or a
        study resumes on (reading 10^8 rows to hash them would cost more than an epoch)."""
        stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in self.table.files]
        return content_hash([stats, self.spec.fingerprint], length=16)

    def read_row_group(self, i: int) -> ModelInputs:
        return ModelInputs.from_frame(self.table.read_row_group(i, self._columns), self.spec)

    @property
    def label(self) -> np.ndarray:
        """Every row's label (one float32 column, read a row group at a time)."""
        parts = [f[LABEL_COLUMN].to_numpy(np.float32) for f in self.table.iter_frames([LABEL_COLUMN])]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def iter_row_groups(self) -> Iterator[ModelInputs]:
        for i in range(len(self.table.row_groups)):
            yield self.read_row_group(i)

    @property
    def streamed(self) -> bool:
        return True

    def chunks(self) -> Iterator[ModelInputs]:
        """The row groups in order (memory: one row group)."""
        return self.iter_row_groups()

    def check_pair_options(self, use_pairs: bool, shapley_p: np.ndarray | None) -> None:
        """A streamed split has no pair table: the pairs of its batches are drawn from ``shapley_p``."""
        if use_pairs and shapley_p is None:
            raise ValueError("training streamed from parquet draws its pairs per batch: it needs shapley_p")

    def batch_source(self, settings: BatchSettings) -> StreamedBatches:
        return StreamedBatches(self, settings)

    def take(self, index: np.ndarray | slice) -> ModelInputs:
        """Rows ``index`` (in that order) read from the row groups that hold them, one at a time."""
        n = len(self)
        index = np.arange(n)[index] if isinstance(index, slice) else np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise IndexError(f"row index out of range for a table of {n} rows")
        starts = np.concatenate([[0], np.cumsum(self.row_group_rows)])
        group_of = np.searchsorted(starts, index, side="right") - 1
        order = np.argsort(group_of, kind="stable")
        parts = []
        for g in np.unique(group_of):
            local = index[order][group_of[order] == g] - starts[g]
            parts.append(self.read_row_group(int(g)).take(local))
        if not parts:
            return ModelInputs.from_frame(pd.DataFrame(columns=list(self._columns)), self.spec)
        return _concat(parts).take(np.argsort(order, kind="stable"))


def _concat(parts: list[ModelInputs]) -> ModelInputs:
    if len(parts) == 1:
        return parts[0]
    oracle = None if any(p.oracle is None for p in parts) else np.concatenate([p.oracle for p in parts])
    return ModelInputs(
        cat=np.concatenate([p.cat for p in parts]),
        dense=np.concatenate([p.dense for p in parts]),
        bucket=np.concatenate([p.bucket for p in parts]),
        label=np.concatenate([p.label for p in parts]),
        group=np.concatenate([p.group for p in parts]),
        oracle=oracle,
    )


@dataclass(frozen=True)
class StreamedBatches:
    """A streamed split's batches of each epoch: read through the shuffle buffer (this rank's share of the
    row groups), their pairs drawn per block of batches as they come (:func:`streamed_batches`)."""

    source: ParquetModelInput
    settings: BatchSettings

    def redraw(self, epoch: int) -> None:
        """Nothing to prepare: every batch's pairs are drawn as the batch is read."""

    def batches(self, epoch: int) -> Iterator[Batch]:
        s = self.settings
        buffer = max(s.buffer_rows, s.batch_size)
        rows = shuffled_batches(self.source, s.batch_size, s.seed, epoch, buffer, shard=s.shard)
        return streamed_batches(rows, s, epoch)


def shuffled_batches(
    source: ParquetModelInput, batch_size: int, seed: int, epoch: int, buffer_rows: int, shard: tuple[int, int] = (0, 1)
) -> Iterator[ModelInputs]:
    """This epoch's batches: row groups in a ``(seed, epoch)`` order through a shuffle buffer.

    The buffer is filled to at least ``buffer_rows`` (whole row groups), shuffled, and emptied down to
    ``buffer_rows / 2`` a batch at a time, so rows of neighbouring row groups mix; the last batch of the
    epoch may be short. Deterministic for a given file, seed and epoch. ``shard = (rank, world)``: this
    rank reads every ``world``-th row group of the epoch's order (the ranks together read each once).
    """
    if batch_size < 1 or buffer_rows < batch_size:
        raise ValueError(f"need 1 <= batch_size ({batch_size}) <= buffer_rows ({buffer_rows})")
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard rank {rank} is not in 0..{world - 1}")
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(len(source.row_group_rows))[rank::world]
    buffer: ModelInputs | None = None
    keep = buffer_rows // 2
    for i, group in enumerate(order):
        part = source.read_row_group(int(group))
        buffer = part if buffer is None else _concat([buffer, part])
        last = i == len(order) - 1
        if len(buffer) < buffer_rows and not last:
            continue
        buffer = buffer.take(rng.permutation(len(buffer)))
        floor = 0 if last else keep
        n_out = (len(buffer) - floor) // batch_size * batch_size if not last else len(buffer)
        for start in range(0, n_out, batch_size):
            yield buffer.take(slice(start, min(start + batch_size, n_out)))  # views, no copy
        buffer = buffer.take(slice(n_out, len(buffer)))


def model_source(table: ParquetTable, spec: FeatureSpec, max_rows_in_memory: int | None, name: str) -> TrainingData:
    """A split as training takes it (the catalog hands it lazily, ``load_as: lazy``): in memory when it has
    at most ``max_rows_in_memory`` rows (or the limit is None), else streamed from its parquet file; the
    choice is logged. A caller that already holds the split in memory wraps it with
    :func:`~ccss_pipeline.model.training_data.training_data`."""
    rows = table.num_rows
    if max_rows_in_memory is None or rows <= max_rows_in_memory:
        logger.info(
            "%s: %d rows, at most streaming.max_rows_in_memory=%s: held in memory", name, rows, max_rows_in_memory
        )
        return training_data(ModelInputs.from_frame(table.frame(), spec))
    logger.info(
        "%s: %d rows, more than streaming.max_rows_in_memory=%d: streamed from %s a row group at a time "
        "(%d row groups)",
        name,
        rows,
        max_rows_in_memory,
        table.path,
        len(table.row_groups),
    )
    return ParquetModelInput(table, spec)
