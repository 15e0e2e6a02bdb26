"""Stratified anchors: where an anchored counterfactual move starts (:meth:`MoveTemplate.with_anchor`).

Why: a move built around the row's own value constrains the model only where rows are. A count that
is 0 on 97% of rows then gets almost all of its pairs at 0 (measured: 613 of 630), so the steps from 2
upward are barely trained, and the tails of a continuous feature are left to the few rows there. A
stratified anchor keeps the row's other features as context and sets the drawn feature to a value
drawn evenly over its buckets — for a discrete feature (:attr:`NumericalFeature.support`) evenly over
its observed values, so every integer step a user can make gets its share. The move's points are then
built around that value as around a row's own.
"""

from __future__ import annotations

import numpy as np

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.model.move_builders import draw_inside
from ccss_pipeline.spec import FeatureSpec


def stratified_anchors(
    spec: FeatureSpec,
    k: np.ndarray,
    bucket: np.ndarray,
    dense: np.ndarray,
    share: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(bucket, dense) anchors of pairs moving feature ``k``: for a ``share`` of them (drawn with ``rng``)
    a stratified value of ``k``, for the rest the row's own ``bucket``/``dense``. Inputs are not modified."""
    bucket, dense = bucket.astype(np.int64, copy=True), dense.astype(np.float32, copy=True)
    moved = rng.random(k.shape[0]) < share
    for j in np.unique(k[moved]):  # K features, not rows
        feature = spec.numerical[int(j)]
        rows = np.flatnonzero(moved & (k == j))
        if feature.is_discrete:
            values = rng.choice(np.asarray(feature.support, np.float64), size=rows.size)
            dense[rows], bucket[rows] = encode_numerical(values, feature)
        else:
            bucket[rows] = rng.integers(0, feature.n_buckets, rows.size)
            dense[rows] = draw_inside(spec, k[rows], bucket[rows], rng)
    return bucket, dense
