"""Monte-Carlo permutation Shapley importances of the numerical features (spec §3.1).

q_k = mean over a validation subsample of |φ_k|, φ estimated by permutation sampling on a (warm-up) model.
A feature is "absent" when its dense value AND bucket are replaced by those of a random other row; the
categorical inputs always stay. Vectorized: each permutation round draws an independent feature order
per row and evaluates all K + 1 coalitions of all rows in one batched scoring call, so the cost is
``n_permutations * (K + 1) * n_samples`` scored rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ccss_pipeline.config import ShapleyConfig
from ccss_pipeline.model.synthesis import directed_probabilities
from ccss_pipeline.spec import FeatureSpec, RowSample

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class ShapleyResult:
    """q over all numerical features, p over the directed ones (what synthesis draws from)."""

    feature_names: list[str]
    q: np.ndarray
    directed_names: list[str]
    p: np.ndarray

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            "q": {n: float(v) for n, v in zip(self.feature_names, self.q, strict=True)},
            "p": {n: float(v) for n, v in zip(self.directed_names, self.p, strict=True)},
        }


def shapley_values(score: Scorer, inputs: RowSample, n_samples: int, n_permutations: int, seed: int) -> np.ndarray:
    """φ (n, K): per-row Shapley values of the numerical features for ``score`` (usually logits)."""
    rng = np.random.default_rng(seed)
    n_all = len(inputs)
    if n_all < 2:
        raise ValueError("Shapley estimation needs at least two rows (absent values come from other rows)")
    idx = rng.choice(n_all, size=min(n_samples, n_all), replace=False)
    x = inputs.take(idx)
    n, k = x.dense.shape
    phi = np.zeros((n, k), np.float64)
    states = np.arange(k + 1)[:, None, None]  # coalition size s = 0..K
    cat_rep = np.tile(x.cat, (k + 1, 1))
    for _ in range(n_permutations):
        other = (np.arange(n) + rng.integers(1, n, size=n)) % n  # a random row that is not the row itself
        order = np.argsort(rng.random((n, k)), axis=1)  # order[i, j] = j-th feature added for row i
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(k)[None, :].repeat(n, 0), axis=1)
        present = rank[None, :, :] < states  # (K+1, n, K)
        dense = np.where(present, x.dense[None], x.dense[other][None]).reshape(-1, k).astype(np.float32)
        bucket = np.where(present, x.bucket[None], x.bucket[other][None]).reshape(-1, k)
        z = np.asarray(score(cat_rep, dense, bucket), np.float64).reshape(k + 1, n)
        delta = z[1:] - z[:-1]  # delta[s, i]: gain from adding feature order[i, s]
        phi[np.arange(n)[:, None], order] += delta.T
    return phi / n_permutations


def shapley_importance(
    score: Scorer, inputs: RowSample, spec: FeatureSpec, cfg: ShapleyConfig | None = None
) -> ShapleyResult:
    """q_k = mean |φ_k| over a seeded validation subsample, and p over the directed features."""
    cfg = cfg or ShapleyConfig()
    phi = shapley_values(score, inputs, cfg.n_samples, cfg.n_permutations, cfg.seed)
    q = np.abs(phi).mean(axis=0)
    p = directed_probabilities(q, spec, cfg.epsilon) if spec.directed else np.zeros(0)
    return ShapleyResult([f.name for f in spec.numerical], q, [f.name for f in spec.directed], p)
