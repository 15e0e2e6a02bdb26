"""How each counterfactual move's points are built (:mod:`ccss_pipeline.model.moves` holds the templates).

A builder (:data:`PointBuilder`) takes the rows' :class:`RowGeometry` — for rows with feature k in
bucket b at dense value x: their neighbour buckets, centres and edges, read from per-feature
:class:`FeatureTables` by array indexing only — and returns the move's named points (:class:`BuiltMove`),
each a :class:`Point` (bucket, dense value, whether it exists). ``within`` draws its neighbours' values
inside the neighbour bucket (:func:`draw_inside`, also the stratified anchors' draw).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.spec import FeatureSpec


class Point(NamedTuple):
    """One point of every row's move: bucket (P,), dense value (P,), and whether it really exists (P,) bool
    (an absent one — a neighbour or an edge beyond the last bucket — holds the row's own value)."""

    bucket: np.ndarray
    dense: np.ndarray
    exists: np.ndarray


@dataclass(frozen=True)
class BuiltMove:
    """A template's points for a set of rows, by name; ``side_up``: per row, a one-sided move goes up."""

    points: dict[str, Point]
    side_up: np.ndarray | None = None


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


class RowGeometry:
    """Where rows with feature ``k`` in bucket ``b`` at dense value ``x`` (all in real buckets) sit: their
    neighbour buckets, centres and edges — the pieces every move's points are made of."""

    def __init__(self, tables: FeatureTables, spec: FeatureSpec, k: np.ndarray, b: np.ndarray, x: np.ndarray) -> None:
        self.tables, self.spec, self.k, self.b, self.x = tables, spec, k, b, x
        self.has_down, self.has_up = b >= 1, b + 1 < tables.n_buckets[k]
        w = tables.width
        lo_edge = np.maximum(b - 1, 0)  # boundary between b-1 and b
        hi_edge = np.minimum(b, max(w - 2, 0))  # boundary between b and b+1
        self.e_lo = np.where(self.has_down, tables.edges[k, lo_edge], x).astype(np.float32)
        self.e_hi = np.where(self.has_up, tables.edges[k, hi_edge], x).astype(np.float32)
        #: the nearer edge (in the dense scale) is the upper one; the existing one at an edge bucket
        self.nearest_up = self.has_up & (~self.has_down | (self.e_hi - x <= x - self.e_lo))
        self.down_b, self.up_b = np.where(self.has_down, b - 1, b), np.where(self.has_up, b + 1, b)
        self.somewhere = self.has_up | self.has_down

    @property
    def rows(self) -> int:
        return int(self.b.shape[0])

    def origin(self) -> Point:
        return Point(self.b, self.x, np.ones_like(self.has_up))

    def centre_down(self) -> Point:
        dense = self.tables.centres[self.k, np.maximum(self.b - 1, 0)]
        return Point(self.down_b, np.where(self.has_down, dense, self.x), self.has_down)

    def centre_up(self) -> Point:
        dense = self.tables.centres[self.k, np.minimum(self.b + 1, self.tables.width - 1)]
        return Point(self.up_b, np.where(self.has_up, dense, self.x), self.has_up)

    def inside_down(self, rng: np.random.Generator) -> Point:
        drawn = draw_inside(self.spec, self.k, self.down_b, rng)
        return Point(self.down_b, np.where(self.has_down, drawn, self.x), self.has_down)

    def inside_up(self, rng: np.random.Generator) -> Point:
        drawn = draw_inside(self.spec, self.k, self.up_b, rng)
        return Point(self.up_b, np.where(self.has_up, drawn, self.x), self.has_up)

    def edge(self, side_up: np.ndarray) -> tuple[Point, Point]:
        """(just below, at) the upper edge where ``side_up``, else the lower one."""
        dense = np.where(side_up, self.e_hi, self.e_lo)
        below = Point(np.where(side_up, self.b, self.down_b), dense, self.somewhere)
        at = Point(np.where(side_up, self.up_b, self.b), dense, self.somewhere)
        return below, at

    def lower_edge(self) -> tuple[Point, Point]:
        """(just below, at) the boundary b−1|b."""
        return Point(self.down_b, self.e_lo, self.has_down), Point(self.b, self.e_lo, self.has_down)

    def upper_edge(self) -> tuple[Point, Point]:
        """(just below, at) the boundary b|b+1."""
        return Point(self.b, self.e_hi, self.has_up), Point(self.up_b, self.e_hi, self.has_up)


#: how a template builds its points (an anchored move: around the anchor, which the caller put in ``b, x``)
PointBuilder = Callable[[RowGeometry, np.random.Generator], BuiltMove]


# --------------------------------------------------------------------------------- the moves' points
def centre_points(g: RowGeometry, rng: np.random.Generator) -> BuiltMove:
    return BuiltMove({"down": g.centre_down(), "up": g.centre_up()})


def within_points(g: RowGeometry, rng: np.random.Generator) -> BuiltMove:
    down = g.inside_down(rng)  # drawn before "up": the draws' order is the seeded stream's
    return BuiltMove({"down": down, "up": g.inside_up(rng)})


def straddle_points(g: RowGeometry, rng: np.random.Generator) -> BuiltMove:
    below, at = g.edge(g.nearest_up)
    return BuiltMove({"down": g.centre_down(), "up": g.centre_up(), "below": below, "at": at})


def edge_points(g: RowGeometry, rng: np.random.Generator) -> BuiltMove:
    below, at = g.edge(g.nearest_up)  # the dense-only step runs from O to the nearest edge
    return BuiltMove({"below": below, "at": at}, side_up=g.nearest_up)


def path_points(g: RowGeometry, rng: np.random.Generator) -> BuiltMove:
    coin = rng.random(g.rows) < 0.5
    side_up = g.has_up & (~g.has_down | coin)  # a random side per row; the existing one at an edge bucket
    down, up = g.centre_down(), g.centre_up()
    centre = Point(np.where(side_up, up.bucket, down.bucket), np.where(side_up, up.dense, down.dense), g.somewhere)
    below, at = g.edge(side_up)
    return BuiltMove({"below": below, "at": at, "centre": centre}, side_up=side_up)


def bracket_points(g: RowGeometry, rng: np.random.Generator) -> BuiltMove:
    (lo_below, lo_at), (hi_below, hi_at) = g.lower_edge(), g.upper_edge()
    return BuiltMove({"lo_below": lo_below, "lo_at": lo_at, "hi_below": hi_below, "hi_at": hi_at})


def decomposed_points(g: RowGeometry, rng: np.random.Generator) -> BuiltMove:
    return BuiltMove({**centre_points(g, rng).points, **bracket_points(g, rng).points})


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
