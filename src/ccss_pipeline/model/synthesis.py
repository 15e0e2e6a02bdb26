"""Counterfactual sample synthesizing (spec §3), fully vectorized.

A pair is stored compactly (spec §3.5): the row, the moved numerical feature, the points of its move
(bucket id and dense value each; which points a move has is :mod:`ccss_pipeline.model.moves`), which
constraints between them are valid for this row, and which of up/down is the factual F. The moved
rows are rebuilt inside each batch.

Rules:
- exactly one directed feature moves per row, drawn with probability ``p`` (Shapley-based, §3.1) among
  the row's features that can move: a feature that is missing in this row (no ordered neighbour of
  "missing") or has a single bucket is not drawable, and ``p`` is renormalised over the rest; a row
  with no drawable feature gets no pair;
- edge rule (§3.4): a neighbour that does not exist is replaced by the row's original value, and the
  constraints through it are not counted (so the one real constraint is not counted twice);
- F/C (§3.3): with s = d_k for y = 1 and -d_k for y = 0, F = up if s = +1 else down; C is the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ccss_pipeline.model.anchors import stratified_anchors
from ccss_pipeline.model.moves import MOVES, FeatureTables, MoveTemplate, build_points, get_move
from ccss_pipeline.spec import FeatureSpec


def feature_probabilities(q: np.ndarray, eps: float = 1e-3, drawable: np.ndarray | None = None) -> np.ndarray:
    """p_k = max(q_k, eps) / sum, with p = 0 where ``drawable`` is False (e.g. single-bucket features).

    The floor keeps every drawable feature in play even if its Shapley estimate is ~0. A NaN or negative
    importance is an upstream failure, never a floor: it raises.
    """
    q = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(q)) or (q < 0).any():
        raise ValueError(f"feature importances must be finite and >= 0, got {q.tolist()} (the Shapley estimate failed)")
    mask = np.ones(q.shape, bool) if drawable is None else np.asarray(drawable, bool)
    if not mask.any():
        raise ValueError("no feature can be drawn (all have a single bucket or none is directed)")
    w = np.where(mask, np.maximum(q, eps), 0.0)
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
    """One counterfactual pair per row that got one; ``feature`` indexes ``spec.numerical``.

    ``bucket``/``dense`` (P, Q): the move's points in template order; ``valid`` (P, C): which of the
    template's constraints hold for the row; ``f_is_up``: the factual F is the "up" point.
    """

    move: str
    row: np.ndarray  # int64
    feature: np.ndarray  # int64
    f_is_up: np.ndarray  # bool
    bucket: np.ndarray  # (P, Q) int64
    dense: np.ndarray  # (P, Q) float32
    valid: np.ndarray  # (P, C) bool

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @property
    def template(self) -> MoveTemplate:
        return get_move(self.move)

    def point(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(bucket, dense) of the named point of every pair."""
        j = self.template.points.index(name)
        return self.bucket[:, j], self.dense[:, j]

    def to_frame(self) -> pd.DataFrame:
        """Compact table for the parquet artifact (narrow integer types, one column per point/constraint)."""
        out: dict[str, np.ndarray] = {
            "move": np.full(len(self), self.move, dtype=object),
            "row": self.row.astype(np.int64),
            "feature": self.feature.astype(np.int16),
            "f_is_up": self.f_is_up.astype(bool),
        }
        for j, name in enumerate(self.template.points):
            out[f"bucket_{name}"] = self.bucket[:, j].astype(np.int16)
            out[f"dense_{name}"] = self.dense[:, j].astype(np.float32)
        for c in range(len(self.template.constraints)):
            out[f"valid_{c}"] = self.valid[:, c].astype(bool)
        frame = pd.DataFrame(out)
        # a categorical keeps the move's name even in an empty table
        frame["move"] = pd.Categorical(frame["move"], categories=[self.move])
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> PairTable:
        if "move" not in frame.columns:
            raise KeyError(
                "pair table lacks the 'move' column: rebuild it with `kedro run --pipelines=counterfactual_pairs`"
            )
        moves: list[str] = [str(m) for m in pd.unique(frame["move"].astype(str))]
        if len(moves) > 1:
            raise ValueError(f"pair table mixes counterfactual moves {sorted(moves)}")
        if (
            not len(moves)
            and isinstance(frame["move"].dtype, pd.CategoricalDtype)
            and len(frame["move"].cat.categories)
        ):
            moves = [str(frame["move"].cat.categories[0])]
        if not len(moves):  # an empty table read back from parquet: its point columns name the move
            points = {c[len("bucket_") :] for c in frame.columns if c.startswith("bucket_")}
            moves = [name for name, t in MOVES.items() if set(t.points) == points][:1] or ["centre"]
        template = get_move(str(moves[0]))
        needed = ["row", "feature", "f_is_up"] + [
            f"{kind}_{p}" for p in template.points for kind in ("bucket", "dense")
        ]
        needed += [f"valid_{c}" for c in range(len(template.constraints))]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise KeyError(f"pair table lacks columns: {missing}")
        n = len(frame)
        return cls(
            move=template.name,
            row=frame["row"].to_numpy(np.int64),
            feature=frame["feature"].to_numpy(np.int64),
            f_is_up=frame["f_is_up"].to_numpy(np.bool_),
            bucket=frame[[f"bucket_{p}" for p in template.points]].to_numpy(np.int64).reshape(n, len(template.points)),
            dense=frame[[f"dense_{p}" for p in template.points]].to_numpy(np.float32).reshape(n, len(template.points)),
            valid=frame[[f"valid_{c}" for c in range(len(template.constraints))]]
            .to_numpy(np.bool_)
            .reshape(n, len(template.constraints)),
        )


def draw_pairs(
    bucket: np.ndarray,
    dense: np.ndarray,
    label: np.ndarray,
    spec: FeatureSpec,
    p: np.ndarray,
    seed: int | np.random.Generator = 0,
    move: str = "centre",
) -> PairTable:
    """Draw one directed feature per row with probabilities ``p`` (over ``spec.directed``) among the row's
    drawable features, and build its ``move`` (see :mod:`ccss_pipeline.model.moves`). Inputs are not modified.
    """
    template = get_move(move)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    directed = np.asarray(spec.directed_indices(), np.int64)
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (len(directed),):
        raise ValueError(f"p has shape {p.shape}, expected ({len(directed)},) = one per directed feature")
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise ValueError(f"draw probabilities must be finite and >= 0, got {p.tolist()}")
    tables = FeatureTables(spec)
    nb = tables.n_buckets[directed]
    b_all = bucket[:, directed]
    drawable = (b_all >= 0) & (b_all < nb[None, :]) & (nb[None, :] >= 2)
    weights = np.where(drawable, p[None, :], 0.0)
    total = weights.sum(1)
    keep = total > 0
    cum = np.cumsum(weights[keep], axis=1) / total[keep, None]
    u = rng.random(int(keep.sum()))
    last_drawable = len(directed) - 1 - np.argmax(drawable[keep][:, ::-1], axis=1)  # rounding of cum[-1] < 1
    choice = np.minimum((u[:, None] >= cum).sum(1), last_drawable)
    rows = np.flatnonzero(keep).astype(np.int64)
    k = directed[choice]
    b = bucket[rows, k].astype(np.int64)
    x = dense[rows, k].astype(np.float32)
    if template.anchored:  # the move starts from a stratified value of k for a share of the pairs
        b, x = stratified_anchors(spec, k, b, x, template.anchor_share, rng)
    pts_bucket, pts_dense, valid = build_points(template, tables, spec, k, b, x, rng)
    y = np.asarray(label)[rows] > 0.5
    s = np.where(y, tables.direction[k], -tables.direction[k])
    return PairTable(template.name, rows, k, s > 0, pts_bucket, pts_dense, valid)


@dataclass(frozen=True)
class PairBatch:
    """The counterfactual pairs of a batch's first P rows, by name (gathered from a :class:`PairLookup`).

    ``has_pair`` (P,) bool: the row has a pair (else everything else is masked); ``feature`` (P,): the
    moved numerical feature; ``point_bucket``/``point_dense`` (P, Q): the move's points; ``f_is_up``
    (P,) bool: F is the upper neighbour; ``direction`` (P,): the feature's direction; ``valid`` (P, C):
    which of the template's constraints hold for the row (float 0/1).
    """

    template: MoveTemplate
    has_pair: torch.Tensor
    feature: torch.Tensor
    point_bucket: torch.Tensor
    f_is_up: torch.Tensor
    direction: torch.Tensor
    point_dense: torch.Tensor
    valid: torch.Tensor

    def __len__(self) -> int:
        return int(self.feature.shape[0])


class PairLookup:
    """Per-row pair arrays on the device, so a batch gathers its pairs by index without any sync.

    Packed in two tensors so a batch's pairs cost two gathers (:meth:`gather` unpacks them by name):
    ``ints`` (N, 2 + Q + 1): has_pair, feature, point buckets, f_is_up; ``floats`` (N, 1 + Q + C):
    the feature's direction, point dense values, constraint validity. Rows without a pair have
    ``has_pair = 0`` and all constraints invalid.
    """

    def __init__(self, pairs: PairTable, n_rows: int, spec: FeatureSpec, device: torch.device) -> None:
        self.template = pairs.template
        q, c = len(self.template.points), len(self.template.constraints)
        direction = np.array([f.direction for f in spec.numerical], np.float32)
        ints = np.zeros((n_rows, 3 + q), np.int64)
        floats = np.zeros((n_rows, 1 + q + c), np.float32)
        ints[pairs.row, 0] = 1
        ints[pairs.row, 1] = pairs.feature
        ints[pairs.row, 2 : 2 + q] = pairs.bucket
        ints[pairs.row, 2 + q] = pairs.f_is_up
        floats[pairs.row, 0] = direction[pairs.feature]
        floats[pairs.row, 1 : 1 + q] = pairs.dense
        floats[pairs.row, 1 + q :] = pairs.valid
        self.n_points, self.n_constraints = q, c
        self.ints = torch.as_tensor(ints, device=device)
        self.floats = torch.as_tensor(floats, device=device)

    def gather(self, rows: torch.Tensor | slice) -> PairBatch:
        """The pairs of ``rows`` (indices or a slice of this lookup's rows), unpacked as views."""
        ints, floats, q = self.ints[rows], self.floats[rows], self.n_points
        return PairBatch(
            self.template,
            has_pair=ints[:, 0] > 0,
            feature=ints[:, 1],
            point_bucket=ints[:, 2 : 2 + q],
            f_is_up=ints[:, 2 + q] > 0,
            direction=floats[:, 0],
            point_dense=floats[:, 1 : 1 + q],
            valid=floats[:, 1 + q :],
        )
