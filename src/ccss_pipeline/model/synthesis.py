"""Counterfactual sample synthesizing (spec §3), fully vectorized.

A pair is stored compactly (spec §3.5): the row, the moved numerical feature, the "up" and "down" values
(bucket id and dense value) and which of them is the factual F. F and C are rebuilt inside each batch.

Rules:
- exactly one directed feature moves per row, drawn with probability ``p`` (Shapley-based, §3.1);
- up = bucket b+1 at its ``centres_dense``, down = bucket b-1; dense value and bucket move together;
- edge rule (§3.4): a neighbour that does not exist is replaced by the row's original bucket and
  original dense value (the pair degenerates to O versus the one existing neighbour);
- rows whose drawn feature is missing (bucket == ``missing_bucket``) get no pair [our choice]: there is
  no ordered neighbour of "missing";
- F/C (§3.3): with s = d_k for y = 1 and -d_k for y = 0, F = up if s = +1 else down; C is the other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from ccss_pipeline.spec import FeatureSpec


def feature_probabilities(q: np.ndarray, eps: float = 1e-3, drawable: np.ndarray | None = None) -> np.ndarray:
    """p_k = max(q_k, eps) / sum, with p = 0 where ``drawable`` is False (e.g. single-bucket features).

    The floor keeps every drawable feature in play even if its Shapley estimate is ~0.
    """
    q = np.asarray(q, dtype=np.float64)
    mask = np.ones(q.shape, bool) if drawable is None else np.asarray(drawable, bool)
    if not mask.any():
        raise ValueError("no feature can be drawn (all have a single bucket or none is directed)")
    w = np.where(mask, np.maximum(np.nan_to_num(q, nan=0.0), eps), 0.0)
    return w / w.sum()


def drawable_mask(spec: FeatureSpec) -> np.ndarray:
    """Per directed feature: True when it has at least two buckets (a neighbour can exist)."""
    return np.array([f.n_buckets >= 2 for f in spec.directed], bool)


def directed_probabilities(q_all: np.ndarray, spec: FeatureSpec, eps: float = 1e-3) -> np.ndarray:
    """p over ``spec.directed`` from importances ``q_all`` over all of ``spec.numerical``."""
    q = np.asarray(q_all, dtype=np.float64)[spec.directed_indices()]
    return feature_probabilities(q, eps, drawable_mask(spec))


@dataclass
class PairTable:
    """One (O, F, C) pair per row that got one; ``feature`` indexes ``spec.numerical``."""

    row: np.ndarray  # int64
    feature: np.ndarray  # int64
    up_bucket: np.ndarray  # int64
    up_dense: np.ndarray  # float32
    down_bucket: np.ndarray  # int64
    down_dense: np.ndarray  # float32
    f_is_up: np.ndarray  # bool

    _DTYPES = {
        "row": np.int64,
        "feature": np.int64,
        "up_bucket": np.int64,
        "up_dense": np.float32,
        "down_bucket": np.int64,
        "down_dense": np.float32,
        "f_is_up": np.bool_,
    }

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @property
    def f_bucket(self) -> np.ndarray:
        return np.where(self.f_is_up, self.up_bucket, self.down_bucket)

    @property
    def f_dense(self) -> np.ndarray:
        return np.where(self.f_is_up, self.up_dense, self.down_dense).astype(np.float32)

    @property
    def c_bucket(self) -> np.ndarray:
        return np.where(self.f_is_up, self.down_bucket, self.up_bucket)

    @property
    def c_dense(self) -> np.ndarray:
        return np.where(self.f_is_up, self.down_dense, self.up_dense).astype(np.float32)

    def to_frame(self) -> pd.DataFrame:
        """Compact table for the parquet artifact (narrow integer types)."""
        return pd.DataFrame(
            {
                "row": self.row.astype(np.int64),
                "feature": self.feature.astype(np.int16),
                "up_bucket": self.up_bucket.astype(np.int16),
                "up_dense": self.up_dense.astype(np.float32),
                "down_bucket": self.down_bucket.astype(np.int16),
                "down_dense": self.down_dense.astype(np.float32),
                "f_is_up": self.f_is_up.astype(bool),
            }
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> PairTable:
        missing = [f.name for f in fields(cls) if f.name not in frame.columns]
        if missing:
            raise KeyError(f"pair table lacks columns: {missing}")
        return cls(**{f.name: frame[f.name].to_numpy(cls._DTYPES[f.name]) for f in fields(cls)})


def draw_pairs(
    bucket: np.ndarray,
    dense: np.ndarray,
    label: np.ndarray,
    spec: FeatureSpec,
    p: np.ndarray,
    seed: int | np.random.Generator = 0,
) -> PairTable:
    """Draw one directed feature per row with probabilities ``p`` (over ``spec.directed``) and build the pairs.

    Inputs are not modified. Rows whose drawn feature is missing get no pair.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    directed = spec.directed_indices()
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (len(directed),):
        raise ValueError(f"p has shape {p.shape}, expected ({len(directed)},) = one per directed feature")
    n = bucket.shape[0]
    choice = rng.choice(len(directed), size=n, p=p / p.sum())
    k = np.asarray(directed, np.int64)[choice]
    rows = np.arange(n, dtype=np.int64)
    b = bucket[rows, k].astype(np.int64)
    x = dense[rows, k].astype(np.float32)

    n_buckets = np.array([f.n_buckets for f in spec.numerical], np.int64)
    direction = np.array([f.direction for f in spec.numerical], np.int64)
    width = int(n_buckets.max()) if len(n_buckets) else 1
    centres = np.zeros((len(spec.numerical), width), np.float32)
    for i, f in enumerate(spec.numerical):  # K features, not rows
        centres[i, : f.n_buckets] = f.centres_dense

    nb = n_buckets[k]
    keep = (b >= 0) & (b < nb)  # the missing bucket has no ordered neighbour
    rows, k, b, x, nb = rows[keep], k[keep], b[keep], x[keep], nb[keep]
    has_up = b + 1 < nb
    has_down = b - 1 >= 0
    up_b = np.where(has_up, b + 1, b)
    down_b = np.where(has_down, b - 1, b)
    up_d = np.where(has_up, centres[k, np.minimum(b + 1, width - 1)], x).astype(np.float32)
    down_d = np.where(has_down, centres[k, np.maximum(b - 1, 0)], x).astype(np.float32)
    y = np.asarray(label)[rows] > 0.5
    s = np.where(y, direction[k], -direction[k])
    return PairTable(rows, k, up_b, up_d, down_b, down_d, s > 0)


def apply_move(
    dense: torch.Tensor,
    bucket: torch.Tensor,
    feature: torch.Tensor,
    new_bucket: torch.Tensor,
    new_dense: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of a batch's (dense, bucket) with ``feature[i]`` of row i moved; inputs untouched."""
    ar = torch.arange(dense.shape[0], device=dense.device)
    d = dense.index_put((ar, feature), new_dense.to(dense.dtype))
    bk = bucket.index_put((ar, feature), new_bucket.to(bucket.dtype))
    return d, bk


def build_counterfactuals(
    dense: torch.Tensor,
    bucket: torch.Tensor,
    feature: torch.Tensor,
    f_bucket: torch.Tensor,
    f_dense: torch.Tensor,
    c_bucket: torch.Tensor,
    c_dense: torch.Tensor,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Full (dense, bucket) of F and of C for rows aligned with the pair arrays (categoricals unchanged)."""
    return apply_move(dense, bucket, feature, f_bucket, f_dense), apply_move(dense, bucket, feature, c_bucket, c_dense)


class PairLookup:
    """Per-row pair arrays on the device, so a batch gathers its pairs by index without any sync.

    Rows without a pair have ``has_pair = False`` and a harmless no-op move (feature 0, own values).
    """

    def __init__(self, pairs: PairTable, n_rows: int, device: torch.device) -> None:
        def full(values: np.ndarray, dtype: np.dtype, fill: float | int) -> torch.Tensor:
            out = np.full(n_rows, fill, dtype=dtype)
            out[pairs.row] = values
            return torch.as_tensor(out, device=device)

        self.has_pair = full(np.ones(len(pairs), bool), np.bool_, False)
        self.feature = full(pairs.feature, np.int64, 0)
        self.f_bucket = full(pairs.f_bucket, np.int64, 0)
        self.f_dense = full(pairs.f_dense, np.float32, 0.0)
        self.c_bucket = full(pairs.c_bucket, np.int64, 0)
        self.c_dense = full(pairs.c_dense, np.float32, 0.0)
        # packed copies: a batch gathers its pairs with two index ops instead of six
        self.ints = torch.stack([self.has_pair.long(), self.feature, self.f_bucket, self.c_bucket], 1)
        self.floats = torch.stack([self.f_dense, self.c_dense], 1)
