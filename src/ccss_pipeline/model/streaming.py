"""A model-ready parquet table read a row group at a time, in a seeded shuffled order (issue 14).

Training on a table larger than memory needs batches whose memory is bounded by a buffer, not by the
table, and whose order is still random and reproducible. As tf.data and WebDataset do it: each
epoch visits the row groups (shards) in an order drawn from ``(seed, epoch)``, pours them into a
shuffle buffer of ``buffer_rows`` rows, and emits batches of rows drawn from the buffer. Every row is
visited exactly once per epoch; the resident set is about ``buffer_rows`` plus one row group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.spec import FeatureSpec, ModelInputs


@dataclass(frozen=True)
class ParquetModelInput:
    """A model-ready parquet file (as the feature stage writes it) that is never loaded whole."""

    path: Path
    spec: FeatureSpec
    _sizes: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        meta = pq.ParquetFile(self.path).metadata
        object.__setattr__(self, "_sizes", tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))

    def __len__(self) -> int:
        return int(sum(self._sizes))

    @property
    def row_group_rows(self) -> tuple[int, ...]:
        return self._sizes

    def digest(self) -> str:
        """Keyed by the file (name, size, modification time) and the spec: what a checkpoint resumes on."""
        stat = Path(self.path).stat()
        return content_hash([Path(self.path).name, stat.st_size, stat.st_mtime_ns, self.spec.fingerprint], length=16)

    def read_row_group(self, i: int) -> ModelInputs:
        frame = pq.ParquetFile(self.path).read_row_group(i).to_pandas()
        return ModelInputs.from_frame(frame, self.spec)


def _concat(parts: list[ModelInputs]) -> ModelInputs:
    if len(parts) == 1:
        return parts[0]
    oracle = None if any(p.oracle is None for p in parts) else np.concatenate([p.oracle for p in parts])
    return ModelInputs(cat=np.concatenate([p.cat for p in parts]), dense=np.concatenate([p.dense for p in parts]),
                       bucket=np.concatenate([p.bucket for p in parts]), label=np.concatenate([p.label for p in parts]),
                       group=np.concatenate([p.group for p in parts]), oracle=oracle)


def shuffled_batches(source: ParquetModelInput, batch_size: int, seed: int, epoch: int, buffer_rows: int
                     ) -> Iterator[ModelInputs]:
    """This epoch's batches: row groups in a ``(seed, epoch)`` order through a shuffle buffer.

    The buffer is filled to at least ``buffer_rows`` (whole row groups), shuffled, and emptied down to
    ``buffer_rows / 2`` a batch at a time, so rows of neighbouring row groups mix; the last batch of the
    epoch may be short. Deterministic for a given file, seed and epoch.
    """
    if batch_size < 1 or buffer_rows < batch_size:
        raise ValueError(f"need 1 <= batch_size ({batch_size}) <= buffer_rows ({buffer_rows})")
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(len(source.row_group_rows))
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
