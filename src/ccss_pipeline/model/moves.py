"""Counterfactual moves (spec §3.2 and §3.6): which points along a feature's raw-value path a pair holds,
and which ordered steps between them the contrastive loss constrains.

A move is a fixed template: the non-original points it stores (each a (bucket, dense) value of the
drawn feature k, everything else as in the row O) and the constraints ``(lower, higher, kind)`` between
points ("O" is the row itself), ordered by raw value, so ``d_k · (z_higher − z_lower)`` must be positive.
Per row a constraint is *valid* only when both its points exist (a neighbour bucket or an edge may not);
absent points hold O's own value so nothing downstream is undefined.

Kinds: ``main`` steps are the paper's centre-to-centre move (weight λ, margin m, loss ``contrastive.loss``);
``edge`` steps are bucket-only (just below vs at a boundary: the dense input is the same, the bucket id
moves by one) or dense-only (inside one bucket) — they carry weight ``edge_weight · λ`` and margin
``edge_margin``. Monotone in each path along the raw path implies monotone in the raw value.

Moves:
- ``centre`` (paper): down = centre of bucket b−1, up = centre of b+1, dense and bucket together.
- ``within``: like ``centre`` but each neighbour's value is drawn inside the neighbour bucket.
- ``straddle``: ``centre`` plus an edge-straddle pair at the boundary nearest the row (in the dense scale).
- ``edge``: O, the nearest boundary's "just below" and "at" points, as one chain: a dense-only step
  from O to the edge and the bucket-only step across it — the paper's cost, no centre move.
- ``decomposed``: the whole centre move split into dense-only and bucket-only steps through both edges
  (down → below b−1|b → at b−1|b → O → below b|b+1 → at b|b+1 → up), plus the centre constraints.
- ``bracket``: ``decomposed`` without the neighbour centres: both edges of the row's bucket, O between
  them (lo_below → lo_at → O → hi_below → hi_at), edge constraints only — four points instead of six.
- ``path``: half of ``decomposed`` at half its cost: one side per row, drawn at random (the existing one
  at an edge bucket): O → just below the edge → at it → the neighbour's centre (mirrored for "down"),
  every step an edge constraint, plus the main O–centre constraint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ccss_pipeline.data.transformer import encode_numerical
from ccss_pipeline.spec import FeatureSpec

ORIGIN = "O"
MAIN, EDGE = "main", "edge"
_CENTRE_CONSTRAINTS = (("down", "up", MAIN), (ORIGIN, "up", MAIN), ("down", ORIGIN, MAIN))


ANCHOR = "anchor"
#: ``<move>@<share>``: the move with a stratified anchor for that share of its pairs (:func:`move_name`)
ANCHOR_SEPARATOR = "@"


@dataclass(frozen=True)
class MoveTemplate:
    """Points stored per pair and the ordered constraints between them.

    ``anchor_share`` > 0 (:meth:`anchored`): the move starts from a stored ``anchor`` point instead of
    the row O — for that share of pairs the anchor is the drawn feature set to a value drawn evenly over
    its buckets (a discrete feature: over its observed values; :mod:`ccss_pipeline.model.anchors`), for
    the rest the row's own value — so every boundary and every integer step gets its share of
    constraints, however few rows sit beside it.
    """

    name: str
    points: tuple[str, ...]
    constraints: tuple[tuple[str, str, str], ...]
    base: str = ""
    anchor_share: float = 0.0

    @property
    def anchored(self) -> bool:
        return ANCHOR in self.points

    def with_anchor(self, share: float) -> MoveTemplate:
        """This move built around a stored anchor point, stratified for ``share`` of the pairs."""
        if not 0.0 < share <= 1.0:
            raise ValueError(f"a stratified anchor share must be in (0, 1], got {share}")
        renamed = tuple((ANCHOR if lo == ORIGIN else lo, ANCHOR if hi == ORIGIN else hi, kind)
                        for lo, hi, kind in self.constraints)  # fmt: skip
        return MoveTemplate(move_name(self.name, share), (ANCHOR, *self.points), renamed, self.name, share)

    @property
    def has_centre_pair(self) -> bool:
        """The paper's F/C pair (down, up) exists: the centre constraints, and InfoNCE, apply."""
        return "down" in self.points and "up" in self.points

    def index(self, point: str) -> int:
        """Position in the per-pair logit row [O, points...]."""
        return 0 if point == ORIGIN else 1 + self.points.index(point)

    @cached_property
    def lower(self) -> np.ndarray:
        return np.array([self.index(lo) for lo, _, _ in self.constraints], np.int64)

    @cached_property
    def higher(self) -> np.ndarray:
        return np.array([self.index(hi) for _, hi, _ in self.constraints], np.int64)

    @cached_property
    def is_edge(self) -> np.ndarray:
        return np.array([kind == EDGE for _, _, kind in self.constraints], bool)


MOVES: dict[str, MoveTemplate] = {
    "centre": MoveTemplate("centre", ("down", "up"), _CENTRE_CONSTRAINTS),
    "within": MoveTemplate("within", ("down", "up"), _CENTRE_CONSTRAINTS),
    "straddle": MoveTemplate("straddle", ("down", "up", "below", "at"), _CENTRE_CONSTRAINTS + (("below", "at", EDGE),)),
    "edge": MoveTemplate(
        "edge", ("below", "at"), ((ORIGIN, "below", EDGE), ("below", "at", EDGE), ("at", ORIGIN, EDGE))
    ),
    "path": MoveTemplate(
        "path",
        ("below", "at", "centre"),
        (
            (ORIGIN, "below", EDGE),
            ("below", "at", EDGE),
            ("at", "centre", EDGE),
            (ORIGIN, "centre", MAIN),
            ("centre", "below", EDGE),
            ("at", ORIGIN, EDGE),
            ("centre", ORIGIN, MAIN),
        ),
    ),
    "bracket": MoveTemplate(
        "bracket",
        ("lo_below", "lo_at", "hi_below", "hi_at"),
        (
            ("lo_below", "lo_at", EDGE),
            ("lo_at", ORIGIN, EDGE),
            (ORIGIN, "hi_below", EDGE),
            ("hi_below", "hi_at", EDGE),
        ),
    ),
    "decomposed": MoveTemplate(
        "decomposed",
        ("down", "up", "lo_below", "lo_at", "hi_below", "hi_at"),
        _CENTRE_CONSTRAINTS
        + (
            ("down", "lo_below", EDGE),
            ("lo_below", "lo_at", EDGE),
            ("lo_at", ORIGIN, EDGE),
            (ORIGIN, "hi_below", EDGE),
            ("hi_below", "hi_at", EDGE),
            ("hi_at", "up", EDGE),
        ),
    ),
}


def move_name(move: str, anchor_share: float = 0.0) -> str:
    """The name a pair table records: the move, and its stratified anchor share when there is one."""
    return move if anchor_share == 0 else f"{move}{ANCHOR_SEPARATOR}{anchor_share:g}"


def get_move(name: str) -> MoveTemplate:
    """The template called ``name`` (``<move>`` or ``<move>@<anchor share>``); unknown names fail
    listing the allowed ones."""
    base, _, share = name.partition(ANCHOR_SEPARATOR)
    if base not in MOVES:
        raise ValueError(f"unknown counterfactual move {name!r}; allowed: {sorted(MOVES)}")
    if not share:
        return MOVES[base]
    try:
        return MOVES[base].with_anchor(float(share))
    except ValueError as err:
        raise ValueError(f"counterfactual move {name!r}: {err}") from None


class FeatureTables:
    """Per-feature lookup tables (K features × buckets), so moves are built by array indexing only."""

    def __init__(self, spec: FeatureSpec) -> None:
        k = len(spec.numerical)
        self.n_buckets = np.array([f.n_buckets for f in spec.numerical], np.int64)
        self.direction = np.array([f.direction for f in spec.numerical], np.int64)
        width = int(self.n_buckets.max()) if k else 1
        self.centres = np.zeros((k, width), np.float32)
        self.edges = np.zeros((k, max(width - 1, 1)), np.float32)  # dense value at inner boundary j
        self.edge_raw = np.zeros((k, max(width - 1, 1)), np.float64)
        for i, f in enumerate(spec.numerical):  # K features, not rows
            self.centres[i, : f.n_buckets] = f.centres_dense
            if f.boundaries:
                self.edges[i, : len(f.boundaries)] = encode_numerical(np.asarray(f.boundaries), f)[0]
                self.edge_raw[i, : len(f.boundaries)] = f.boundaries
        self.width = width


def build_points(
    template: MoveTemplate,
    tables: FeatureTables,
    spec: FeatureSpec,
    k: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket (P, Q), dense (P, Q), valid (P, C)) of ``template`` for rows with feature ``k`` in bucket ``b``
    at dense value ``x`` (all in real buckets). Absent points hold the row's own (b, x)."""
    nb = tables.n_buckets[k]
    has_down, has_up = b >= 1, b + 1 < nb
    w = tables.width
    lo_edge = np.maximum(b - 1, 0)  # boundary between b-1 and b
    hi_edge = np.minimum(b, max(w - 2, 0))  # boundary between b and b+1
    e_lo = np.where(has_down, tables.edges[k, lo_edge], x).astype(np.float32)
    e_hi = np.where(has_up, tables.edges[k, hi_edge], x).astype(np.float32)
    nearest_up = has_up & (~has_down | (e_hi - x <= x - e_lo))
    points: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    down_b, up_b = np.where(has_down, b - 1, b), np.where(has_up, b + 1, b)
    kind = template.base or template.name
    if kind == "within":
        points["down"] = (down_b, np.where(has_down, draw_inside(spec, k, down_b, rng), x))
        points["up"] = (up_b, np.where(has_up, draw_inside(spec, k, up_b, rng), x))
    else:
        points["down"] = (down_b, np.where(has_down, tables.centres[k, np.maximum(b - 1, 0)], x))
        points["up"] = (up_b, np.where(has_up, tables.centres[k, np.minimum(b + 1, w - 1)], x))
    side_up = nearest_up
    if kind == "path":  # a random side per row; the existing one at an edge bucket
        coin = rng.random(b.shape[0]) < 0.5
        side_up = has_up & (~has_down | coin)
        points["centre"] = (np.where(side_up, up_b, down_b), np.where(side_up, points["up"][1], points["down"][1]))
    edge_d = np.where(side_up, e_hi, e_lo)
    points["below"] = (np.where(side_up, b, down_b), edge_d)
    points["at"] = (np.where(side_up, up_b, b), edge_d)
    points["lo_below"], points["lo_at"] = (down_b, e_lo), (b, e_lo)
    points["hi_below"], points["hi_at"] = (b, e_hi), (up_b, e_hi)
    points[ANCHOR] = (b, x)  # an anchored move starts here (the row's value, or a stratified draw)

    exists = {
        ORIGIN: np.ones_like(has_up),
        ANCHOR: np.ones_like(has_up),
        "down": has_down,
        "up": has_up,
        "lo_below": has_down,
        "lo_at": has_down,
        "hi_below": has_up,
        "hi_at": has_up,
        "below": has_up | has_down,
        "at": has_up | has_down,
        "centre": has_up | has_down,
    }
    bucket = np.stack([points[p][0] for p in template.points], 1).astype(np.int64)
    dense = np.stack([points[p][1] for p in template.points], 1).astype(np.float32)
    valid = np.stack([exists[lo] & exists[hi] for lo, hi, _ in template.constraints], 1)
    if kind == "edge":  # the dense-only step runs from O to the nearest edge
        valid[:, 0] &= nearest_up
        valid[:, 2] &= ~nearest_up
    if kind == "path":  # constraints 0, 2, 3 belong to the up side, 4, 5, 6 to the down side
        valid[:, [0, 2, 3]] &= side_up[:, None]
        valid[:, [4, 5, 6]] &= ~side_up[:, None]
    if template.has_centre_pair:  # centre endpoint: at least one real neighbour (the other is O)
        valid[:, 0] = has_down | has_up
    return bucket, dense, valid


def draw_inside(spec: FeatureSpec, k: np.ndarray, bucket: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dense values of raw values drawn uniformly in quantile level inside ``bucket`` of feature ``k``."""
    out = np.zeros(k.shape[0], np.float32)
    u = np.asarray(rng.random(k.shape[0]))
    for j in np.unique(k):  # K features, not rows
        f = spec.numerical[j]
        rows = np.flatnonzero(k == j)
        q = np.asarray(f.quantiles, np.float64)
        if q.size == 0:
            raise ValueError(f"feature '{f.name}' has no quantile sketch: rebuild the feature spec")
        levels = np.linspace(0.0, 1.0, q.size)
        edges = np.concatenate([[q[0]], np.asarray(f.boundaries, np.float64), [q[-1]]])
        lo_raw, hi_raw = edges[bucket[rows]], edges[bucket[rows] + 1]
        lo_lvl = np.searchsorted(q, lo_raw, side="left") / (q.size - 1)
        hi_lvl = np.searchsorted(q, hi_raw, side="left") / (q.size - 1)
        raw = np.asarray(np.interp(lo_lvl + u[rows] * np.maximum(hi_lvl - lo_lvl, 0.0), levels, q))
        top = bucket[rows] == f.n_buckets - 1
        raw = np.clip(raw, lo_raw, np.where(top, hi_raw, np.nextafter(hi_raw, -np.inf)))
        out[rows] = encode_numerical(raw, f)[0]
    return out
