"""Counterfactual moves (spec §3.2 and §3.6): which points along a feature's raw-value path a pair holds,
and which ordered steps between them the contrastive loss constrains.

A move is a fixed template: the non-original points it stores (each a (bucket, dense) value of the
drawn feature k, everything else as in the row O) and the constraints between points ("O" is the row
itself), each ``Constraint(lower, higher, role)``, ordered by raw value, so ``d_k · (z_higher − z_lower)``
must be positive. Per row a constraint is *valid* only when both its points exist (a neighbour bucket or
an edge may not); absent points hold O's own value so nothing downstream is undefined.

Each constraint declares its **role** (:class:`ConstraintRole`), and the loss picks constraints by role,
never by position:

- ``ENDPOINT`` (down → up), ``HALF_UP`` (O → up), ``HALF_DOWN`` (down → O): the paper's centre-to-centre
  move, its F/C pair and the two half-pairs through O (weight λ, margin m, loss ``contrastive.loss``;
  the half-pairs count only for ``margin`` with ``anchor_on_original``; the endpoint is valid where
  either neighbour exists — at an edge bucket it is the one real half-pair);
- ``STEP``: a centre-to-centre step outside the F/C pair (``path``'s O ↔ neighbour centre), always counted
  with ``contrastive.loss``;
- ``EDGE``: bucket-only (just below vs at a boundary: the dense input is the same, the bucket id moves by
  one) or dense-only (inside one bucket) steps — weight ``edge_weight · λ`` and margin ``edge_margin``.

A constraint may also be one-sided (``side``): it holds only on the rows whose move takes that side of
the row (the nearest edge for ``edge``, a coin for ``path``). Monotone in each path along the raw path
implies monotone in the raw value.

Each template owns how its points are built (``MoveTemplate.build``, from the row's
:class:`~ccss_pipeline.model.move_builders.RowGeometry`; the builders are in
:mod:`ccss_pipeline.model.move_builders`), so adding a move is a point builder there and one
:class:`MoveTemplate` passed to :func:`register_move`, plus its tests.

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
  every step an edge constraint, plus the main O–centre step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property
from typing import NamedTuple

import numpy as np

from ccss_pipeline.model.move_builders import (
    FeatureTables,
    Point,
    PointBuilder,
    RowGeometry,
    bracket_points,
    centre_points,
    decomposed_points,
    edge_points,
    path_points,
    straddle_points,
    within_points,
)
from ccss_pipeline.spec import FeatureSpec

ORIGIN = "O"
ANCHOR = "anchor"
#: ``<move>@<share>``: the move with a stratified anchor for that share of its pairs (:func:`move_name`)
ANCHOR_SEPARATOR = "@"


class ConstraintRole(Enum):
    """What a constraint is to the loss (see the module): which hinge it takes and when it counts."""

    ENDPOINT = "endpoint"  # down → up: the paper's F/C pair
    HALF_UP = "half_up"  # O → up
    HALF_DOWN = "half_down"  # down → O
    STEP = "step"  # a centre-to-centre step outside the F/C pair
    EDGE = "edge"  # a bucket-only or dense-only step

    @property
    def is_edge(self) -> bool:
        return self is ConstraintRole.EDGE


class Side(Enum):
    """The side of the row a one-sided move takes (per row: ``BuiltMove.side_up``)."""

    UP = "up"
    DOWN = "down"


class Constraint(NamedTuple):
    """``d_k · (z_higher − z_lower) > 0`` between two points of a move; ``side``: only on that side's rows."""

    lower: str
    higher: str
    role: ConstraintRole
    side: Side | None = None


@dataclass(frozen=True)
class MoveTemplate:
    """Points stored per pair, the ordered constraints between them, and how the points are built.

    ``anchor_share`` > 0 (:meth:`anchored`): the move starts from a stored ``anchor`` point instead of
    the row O — for that share of pairs the anchor is the drawn feature set to a value drawn evenly over
    its buckets (a discrete feature: over its observed values; :mod:`ccss_pipeline.model.anchors`), for
    the rest the row's own value — so every boundary and every integer step gets its share of
    constraints, however few rows sit beside it.
    """

    name: str
    points: tuple[str, ...]
    constraints: tuple[Constraint, ...]
    build: PointBuilder
    base: str = ""
    anchor_share: float = 0.0

    def __post_init__(self) -> None:
        named = {ORIGIN, *self.points}
        for c in self.constraints:
            if c.lower not in named or c.higher not in named:
                raise ValueError(f"move {self.name!r}: constraint {c} names a point it does not store")
        roles = [c.role for c in self.constraints]
        if roles.count(ConstraintRole.ENDPOINT) > 1:
            raise ValueError(f"move {self.name!r} has more than one centre endpoint")
        halves = ConstraintRole.HALF_UP in roles or ConstraintRole.HALF_DOWN in roles
        if halves and ConstraintRole.ENDPOINT not in roles:
            raise ValueError(f"move {self.name!r} has half-pairs without their centre endpoint")

    @property
    def anchored(self) -> bool:
        return ANCHOR in self.points

    def with_anchor(self, share: float) -> MoveTemplate:
        """This move built around a stored anchor point, stratified for ``share`` of the pairs."""
        if not 0.0 < share <= 1.0:
            raise ValueError(f"a stratified anchor share must be in (0, 1], got {share}")

        def moved(point: str) -> str:
            return ANCHOR if point == ORIGIN else point

        renamed = tuple(c._replace(lower=moved(c.lower), higher=moved(c.higher)) for c in self.constraints)
        return replace(
            self,
            name=move_name(self.name, share),
            points=(ANCHOR, *self.points),
            constraints=renamed,
            base=self.name,
            anchor_share=share,
        )

    @cached_property
    def endpoint(self) -> Constraint | None:
        """The F/C pair's constraint (lower = down, higher = up), None for a move without one."""
        return next((c for c in self.constraints if c.role is ConstraintRole.ENDPOINT), None)

    @property
    def has_centre_pair(self) -> bool:
        """The paper's F/C pair (down, up) exists: the centre constraints, and InfoNCE, apply."""
        return self.endpoint is not None

    def columns(self, *roles: ConstraintRole) -> list[int]:
        """Positions (in ``constraints``, so in a pair's ``valid`` row) of the constraints of ``roles``."""
        return [j for j, c in enumerate(self.constraints) if c.role in roles]

    def index(self, point: str) -> int:
        """Position in the per-pair logit row [O, points...]."""
        return 0 if point == ORIGIN else 1 + self.points.index(point)

    @cached_property
    def lower(self) -> np.ndarray:
        return np.array([self.index(c.lower) for c in self.constraints], np.int64)

    @cached_property
    def higher(self) -> np.ndarray:
        return np.array([self.index(c.higher) for c in self.constraints], np.int64)

    @cached_property
    def is_edge(self) -> np.ndarray:
        return np.array([c.role.is_edge for c in self.constraints], bool)


# ------------------------------------------------------------------------------------- the templates
_R, _UP, _DOWN = ConstraintRole, Side.UP, Side.DOWN
CENTRE_CONSTRAINTS = (
    Constraint("down", "up", _R.ENDPOINT),
    Constraint(ORIGIN, "up", _R.HALF_UP),
    Constraint("down", ORIGIN, _R.HALF_DOWN),
)
#: down → below b−1|b → at b−1|b → O → below b|b+1 → at b|b+1 → up, all edge steps
DECOMPOSED_EDGES = (
    Constraint("down", "lo_below", _R.EDGE),
    Constraint("lo_below", "lo_at", _R.EDGE),
    Constraint("lo_at", ORIGIN, _R.EDGE),
    Constraint(ORIGIN, "hi_below", _R.EDGE),
    Constraint("hi_below", "hi_at", _R.EDGE),
    Constraint("hi_at", "up", _R.EDGE),
)

MOVES: dict[str, MoveTemplate] = {}


def register_move(template: MoveTemplate) -> MoveTemplate:
    """Make ``template`` a counterfactual move by its name (``counterfactual_pairs.move``)."""
    if ANCHOR_SEPARATOR in template.name or template.anchored:
        raise ValueError(f"register the plain move, not an anchored one: {template.name!r}")
    MOVES[template.name] = template
    return template


for _template in (
    MoveTemplate("centre", ("down", "up"), CENTRE_CONSTRAINTS, centre_points),
    MoveTemplate("within", ("down", "up"), CENTRE_CONSTRAINTS, within_points),
    MoveTemplate(
        "straddle",
        ("down", "up", "below", "at"),
        CENTRE_CONSTRAINTS + (Constraint("below", "at", _R.EDGE),),
        straddle_points,
    ),
    MoveTemplate(
        "edge",
        ("below", "at"),
        (
            Constraint(ORIGIN, "below", _R.EDGE, _UP),
            Constraint("below", "at", _R.EDGE),
            Constraint("at", ORIGIN, _R.EDGE, _DOWN),
        ),
        edge_points,
    ),
    MoveTemplate(
        "path",
        ("below", "at", "centre"),
        (
            Constraint(ORIGIN, "below", _R.EDGE, _UP),
            Constraint("below", "at", _R.EDGE),
            Constraint("at", "centre", _R.EDGE, _UP),
            Constraint(ORIGIN, "centre", _R.STEP, _UP),
            Constraint("centre", "below", _R.EDGE, _DOWN),
            Constraint("at", ORIGIN, _R.EDGE, _DOWN),
            Constraint("centre", ORIGIN, _R.STEP, _DOWN),
        ),
        path_points,
    ),
    MoveTemplate("bracket", ("lo_below", "lo_at", "hi_below", "hi_at"), DECOMPOSED_EDGES[1:-1], bracket_points),
    MoveTemplate(
        "decomposed",
        ("down", "up", "lo_below", "lo_at", "hi_below", "hi_at"),
        CENTRE_CONSTRAINTS + DECOMPOSED_EDGES,
        decomposed_points,
    ),
):
    register_move(_template)


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
    at dense value ``x`` (all in real buckets; an anchored move: the anchors). Absent points hold the row's
    own (b, x)."""
    geometry = RowGeometry(tables, spec, k, b, x)
    built = template.build(geometry, rng)
    origin = geometry.origin()  # an anchored move starts at its anchor: the row's value, or a stratified draw
    points = {ORIGIN: origin, ANCHOR: origin, **built.points}
    bucket = np.stack([points[p].bucket for p in template.points], 1).astype(np.int64)
    dense = np.stack([points[p].dense for p in template.points], 1).astype(np.float32)
    valid = np.stack([_validity(c, points, built.side_up, template.name) for c in template.constraints], 1)
    return bucket, dense, valid


def _validity(c: Constraint, points: dict[str, Point], side_up: np.ndarray | None, move: str) -> np.ndarray:
    """Per row: both points exist (the centre endpoint: either — the other is O at an edge bucket), on the
    constraint's side where it has one."""
    lower, higher = points[c.lower].exists, points[c.higher].exists
    valid = lower | higher if c.role is ConstraintRole.ENDPOINT else lower & higher
    if c.side is None:
        return valid
    if side_up is None:
        raise ValueError(f"move {move!r}: a one-sided constraint needs its builder to choose each row's side")
    return valid & (side_up if c.side is Side.UP else ~side_up)
