"""Counterfactual move templates (spec §3.2, §3.4, §3.6) on hand-computed rows.

One directed feature, identity transform, mean 0, std 1 (so dense = raw), boundaries [1, 2, 3]
-> buckets 0..3 with centres [0.5, 1.5, 2.5, 3.5]. Rows (dense, bucket):

  r0 = (1.2, 1)  inner, nearer the lower boundary 1.0
  r1 = (1.9, 1)  inner, nearer the upper boundary 2.0
  r2 = (0.3, 0)  first bucket (no "down")
  r3 = (3.6, 3)  last bucket (no "up")
"""

import numpy as np
import pytest

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.model.move_builders import BuiltMove, FeatureTables, centre_points
from ccss_pipeline.model.moves import (
    MOVES,
    Constraint,
    ConstraintRole,
    MoveTemplate,
    Side,
    build_points,
    get_move,
)
from ccss_pipeline.model.synthesis import PairTable, draw_pairs
from ccss_pipeline.spec import FeatureSpec, NumericalFeature

T, F = True, False
X = np.array([1.2, 1.9, 0.3, 3.6], np.float32)
B = np.array([1, 1, 0, 3], np.int64)


def _feature(direction: int = 1) -> NumericalFeature:
    return NumericalFeature(
        "x",
        direction,
        "identity",
        0.0,
        1.0,
        boundaries=[1.0, 2.0, 3.0],
        centres=[0.5, 1.5, 2.5, 3.5],
        centres_dense=[0.5, 1.5, 2.5, 3.5],
        quantiles=np.linspace(0.0, 4.0, 41).tolist(),
    )


@pytest.fixture(scope="module")
def hand_spec() -> FeatureSpec:
    return FeatureSpec(categorical=[], numerical=[_feature()])


def _pairs(spec, move, seed=0, label=None):
    label = np.ones(len(X), np.float32) if label is None else label
    pairs = draw_pairs(B[:, None], X[:, None], label, spec, np.array([1.0]), seed=seed, move=move)
    np.testing.assert_array_equal(pairs.row, np.arange(len(X)))  # every row gets its pair, in order
    np.testing.assert_array_equal(pairs.feature, 0)
    return pairs


# expected points per move: name -> (buckets of r0..r3, dense values of r0..r3)
EXPECTED_POINTS = {
    "centre": {
        "down": ([0, 0, 0, 2], [0.5, 0.5, 0.3, 2.5]),  # r2: no down -> the original (0, 0.3)
        "up": ([2, 2, 1, 3], [2.5, 2.5, 1.5, 3.6]),  # r3: no up -> the original (3, 3.6)
    },
    "straddle": {
        "down": ([0, 0, 0, 2], [0.5, 0.5, 0.3, 2.5]),
        "up": ([2, 2, 1, 3], [2.5, 2.5, 1.5, 3.6]),
        # just below / at the nearest boundary: r0 -> 1.0, r1 -> 2.0, r2 (first) -> 1.0, r3 (last) -> 3.0
        "below": ([0, 1, 0, 2], [1.0, 2.0, 1.0, 3.0]),
        "at": ([1, 2, 1, 3], [1.0, 2.0, 1.0, 3.0]),
    },
    "edge": {
        "below": ([0, 1, 0, 2], [1.0, 2.0, 1.0, 3.0]),
        "at": ([1, 2, 1, 3], [1.0, 2.0, 1.0, 3.0]),
    },
    "decomposed": {
        "down": ([0, 0, 0, 2], [0.5, 0.5, 0.3, 2.5]),
        "up": ([2, 2, 1, 3], [2.5, 2.5, 1.5, 3.6]),
        # lower boundary b-1|b (absent for r2 -> the original (0, 0.3))
        "lo_below": ([0, 0, 0, 2], [1.0, 1.0, 0.3, 3.0]),
        "lo_at": ([1, 1, 0, 3], [1.0, 1.0, 0.3, 3.0]),
        # upper boundary b|b+1 (absent for r3 -> the original (3, 3.6))
        "hi_below": ([1, 1, 0, 3], [2.0, 2.0, 1.0, 3.6]),
        "hi_at": ([2, 2, 1, 3], [2.0, 2.0, 1.0, 3.6]),
    },
    "bracket": {  # decomposed without the neighbour centres
        "lo_below": ([0, 0, 0, 2], [1.0, 1.0, 0.3, 3.0]),
        "lo_at": ([1, 1, 0, 3], [1.0, 1.0, 0.3, 3.0]),
        "hi_below": ([1, 1, 0, 3], [2.0, 2.0, 1.0, 3.6]),
        "hi_at": ([2, 2, 1, 3], [2.0, 2.0, 1.0, 3.6]),
    },
}

# expected valid mask (rows r0..r3 x the template's constraints, in template order)
CENTRE_VALID = [[T, T, T], [T, T, T], [T, T, F], [T, F, T]]  # (down,up) (O,up) (down,O)
EXPECTED_VALID = {
    "centre": CENTRE_VALID,
    "within": CENTRE_VALID,
    "straddle": [c + [T] for c in CENTRE_VALID],  # + (below, at): a boundary always exists
    # (O, below) dense-only up to the upper edge; (below, at) bucket-only; (at, O) dense-only from the lower edge
    "edge": [[F, T, T], [T, T, F], [T, T, F], [F, T, T]],
    # lo_below->lo_at, lo_at->O | O->hi_below, hi_below->hi_at
    "bracket": [[T, T, T, T], [T, T, T, T], [F, F, T, T], [T, T, F, F]],
    "decomposed": [
        # centre | down->lo_below, lo_below->lo_at, lo_at->O | O->hi_below, hi_below->hi_at, hi_at->up
        [T, T, T, T, T, T, T, T, T],
        [T, T, T, T, T, T, T, T, T],
        [T, T, F, F, F, F, T, T, T],
        [T, F, T, T, T, T, F, F, F],
    ],
}


def test_templates_points_and_constraints():
    assert {"centre", "within", "straddle", "edge", "decomposed"} <= set(MOVES)
    edge = ConstraintRole.EDGE
    assert get_move("edge").constraints == (
        Constraint("O", "below", edge, Side.UP),
        Constraint("below", "at", edge),
        Constraint("at", "O", edge, Side.DOWN),
    )
    assert get_move("straddle").points == ("down", "up", "below", "at")
    assert {m for m in MOVES if get_move(m).has_centre_pair} == {"centre", "within", "straddle", "decomposed"}
    t = get_move("straddle")
    np.testing.assert_array_equal(t.lower, [1, 0, 1, 3])  # [O, down, up, below, at] positions
    np.testing.assert_array_equal(t.higher, [2, 2, 0, 4])
    np.testing.assert_array_equal(t.is_edge, [F, F, F, T])
    with pytest.raises(ValueError, match="allowed"):
        get_move("sideways")


@pytest.mark.parametrize("move", sorted(EXPECTED_POINTS))
def test_points_on_hand_rows(hand_spec, move):
    pairs = _pairs(hand_spec, move)
    assert pairs.move == move and pairs.bucket.shape == (4, len(EXPECTED_POINTS[move]))
    for name, (buckets, dense) in EXPECTED_POINTS[move].items():
        b, d = pairs.point(name)
        np.testing.assert_array_equal(b, buckets, err_msg=f"{move}.{name} buckets")
        np.testing.assert_allclose(d, dense, rtol=0, atol=1e-6, err_msg=f"{move}.{name} dense")


@pytest.mark.parametrize("move", sorted(EXPECTED_VALID))
def test_valid_mask_on_hand_rows(hand_spec, move):
    pairs = _pairs(hand_spec, move)
    np.testing.assert_array_equal(pairs.valid, EXPECTED_VALID[move])


@pytest.mark.parametrize("move", sorted(EXPECTED_VALID))
def test_build_points_matches_draw_pairs(hand_spec, move):
    """The public draw goes through build_points unchanged (deterministic moves only use the rng for ``within``)."""
    tables = FeatureTables(hand_spec)
    k = np.zeros(len(X), np.int64)
    bucket, dense, valid = build_points(get_move(move), tables, hand_spec, k, B, X, np.random.default_rng(1))
    pairs = _pairs(hand_spec, move)
    np.testing.assert_array_equal(valid, pairs.valid)
    np.testing.assert_array_equal(bucket, pairs.bucket)
    if move != "within":
        np.testing.assert_array_equal(dense, pairs.dense)


def test_tables_hold_boundary_dense_values(hand_spec):
    tables = FeatureTables(hand_spec)
    np.testing.assert_allclose(tables.edges[0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(tables.centres[0], [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_array_equal(tables.n_buckets, [4])


def test_straddle_pair_is_bucket_only_step(hand_spec):
    """below/at share the dense value (a boundary) and differ by one bucket; 'at' is how the boundary encodes."""
    pairs = _pairs(hand_spec, "straddle")
    (bb, bd), (ab, ad) = pairs.point("below"), pairs.point("at")
    np.testing.assert_array_equal(bd, ad)
    np.testing.assert_array_equal(ab - bb, 1)
    _, enc_bucket = encode_numerical(ad.astype(np.float64), hand_spec.numerical[0])
    np.testing.assert_array_equal(enc_bucket, ab)


def test_within_values_lie_inside_the_neighbour_bucket(hand_spec):
    f = hand_spec.numerical[0]
    a, b = _pairs(hand_spec, "within", seed=0), _pairs(hand_spec, "within", seed=1)
    for pairs in (a, b):
        np.testing.assert_array_equal(pairs.valid, CENTRE_VALID)
        for name, real in (("down", B >= 1), ("up", B + 1 < 4)):
            bucket, dense = pairs.point(name)
            np.testing.assert_array_equal(bucket, np.where(real, B + (1 if name == "up" else -1), B))
            _, enc = encode_numerical(dense[real].astype(np.float64), f)  # identity, mean 0, std 1: dense = raw
            np.testing.assert_array_equal(enc, bucket[real], err_msg=name)
            np.testing.assert_array_equal(dense[~real], X[~real])  # the absent neighbour holds the original
    real_dense = np.concatenate([a.point("down")[1][B >= 1], a.point("up")[1][B < 3]])
    other = np.concatenate([b.point("down")[1][B >= 1], b.point("up")[1][B < 3]])
    assert not np.array_equal(real_dense, other)  # seeded draws differ across seeds
    np.testing.assert_array_equal(a.dense, _pairs(hand_spec, "within", seed=0).dense)  # and repeat per seed


def test_within_many_draws_cover_the_bucket(hand_spec):
    """Many draws from bucket 1 (the up neighbour of bucket 0) fill [1, 2) rather than sit on one value."""
    n = 2000
    x = np.full((n, 1), 0.3, np.float32)
    b = np.zeros((n, 1), np.int64)
    pairs = draw_pairs(b, x, np.ones(n, np.float32), hand_spec, np.array([1.0]), seed=3, move="within")
    up_b, up_d = pairs.point("up")
    np.testing.assert_array_equal(up_b, 1)
    assert up_d.min() >= 1.0 and up_d.max() < 2.0
    assert up_d.min() < 1.1 and up_d.max() > 1.9 and np.unique(up_d).size > n // 2


@pytest.mark.parametrize("move", sorted(EXPECTED_VALID))
def test_decreasing_feature_same_points_swapped_fc(move):
    """A decreasing feature: same points (ordered by raw value); F is 'down' for y = 1 and 'up' for y = 0."""
    spec = FeatureSpec(categorical=[], numerical=[_feature(direction=-1)])
    label = np.array([1, 0, 1, 0], np.float32)
    pairs = _pairs(spec, move, label=label)
    np.testing.assert_array_equal(pairs.f_is_up, [F, T, F, T])
    same = _pairs(FeatureSpec(categorical=[], numerical=[_feature(direction=+1)]), move, label=label)
    np.testing.assert_array_equal(pairs.bucket, same.bucket)
    np.testing.assert_array_equal(pairs.dense, same.dense)
    np.testing.assert_array_equal(same.f_is_up, [T, F, T, F])
    np.testing.assert_array_equal(pairs.valid, EXPECTED_VALID[move])


def test_tie_between_boundaries_is_a_real_boundary(hand_spec):
    """A row exactly half-way still gets a straddle pair at one of its two boundaries."""
    pairs = draw_pairs(
        np.array([[1]]),
        np.array([[1.5]], np.float32),
        np.ones(1, np.float32),
        hand_spec,
        np.array([1.0]),
        move="straddle",
    )
    below_b, below_d = pairs.point("below")
    assert (below_b[0], below_d[0]) in {(0, 1.0), (1, 2.0)}
    assert pairs.valid[0].all()


# ------------------------------------------------------------------------- roles, and a move as one object
R = ConstraintRole


def test_every_centre_pair_is_declared_by_role():
    """The centre moves lead with their F/C pair, but nothing relies on that: the roles name it."""
    for name in sorted(MOVES):
        t = get_move(name)
        roles = {c.role: (c.lower, c.higher) for c in t.constraints if c.role is not R.EDGE}
        if t.has_centre_pair:
            assert roles == {R.ENDPOINT: ("down", "up"), R.HALF_UP: ("O", "up"), R.HALF_DOWN: ("down", "O")}, name
            assert t.endpoint == Constraint("down", "up", R.ENDPOINT)
            assert t.columns(R.HALF_UP, R.HALF_DOWN) == [1, 2]
        else:
            assert t.endpoint is None and set(roles) <= {R.STEP}, name
    path = get_move("path")
    assert [c.side for c in path.constraints if c.role is R.STEP] == [Side.UP, Side.DOWN]


def _reversed(t: MoveTemplate) -> MoveTemplate:
    """``t`` with its points and its constraints in reverse order: the same move."""
    return MoveTemplate(f"{t.name}_reversed", t.points[::-1], t.constraints[::-1], t.build)


@pytest.mark.parametrize("move", sorted(EXPECTED_VALID))
def test_reordering_a_move_reorders_its_columns_only(hand_spec, move):
    """Validity follows each constraint's role and side, not its position: a reordered template builds
    the same points and validity, in its own order."""
    tables, k = FeatureTables(hand_spec), np.zeros(len(X), np.int64)
    t = get_move(move)
    bucket, dense, valid = build_points(t, tables, hand_spec, k, B, X, np.random.default_rng(1))
    r_bucket, r_dense, r_valid = build_points(_reversed(t), tables, hand_spec, k, B, X, np.random.default_rng(1))
    np.testing.assert_array_equal(r_valid, valid[:, ::-1])
    np.testing.assert_array_equal(r_bucket, bucket[:, ::-1])
    if move != "within":  # within's two draws come in the builder's order, whatever the template's
        np.testing.assert_array_equal(r_dense, dense[:, ::-1])


def _up_only(g, rng):
    return BuiltMove({"up": g.centre_up()})


UP_ONLY = MoveTemplate("up_only", ("up",), (Constraint("O", "up", R.STEP),), _up_only)


def test_a_new_move_is_one_template(hand_spec, monkeypatch):
    """A move is its template and its builder: registered, it is drawn, stored and read back."""
    monkeypatch.setitem(MOVES, UP_ONLY.name, UP_ONLY)
    pairs = _pairs(hand_spec, "up_only")
    np.testing.assert_array_equal(pairs.valid[:, 0], B + 1 < 4)  # r3 sits in the last bucket
    np.testing.assert_array_equal(pairs.point("up")[0], [2, 2, 1, 3])
    back = PairTable.from_frame(pairs.to_frame())
    assert back.move == "up_only" and back.template is UP_ONLY
    np.testing.assert_array_equal(back.valid, pairs.valid)


def test_template_mistakes_fail_when_declared_or_built(hand_spec):
    down_up = ("down", "up")
    with pytest.raises(ValueError, match="does not store"):
        MoveTemplate("m", ("up",), (Constraint("down", "up", R.EDGE),), centre_points)
    with pytest.raises(ValueError, match="more than one centre endpoint"):
        MoveTemplate("m", down_up, (Constraint("down", "up", R.ENDPOINT),) * 2, centre_points)
    with pytest.raises(ValueError, match="without their centre endpoint"):
        MoveTemplate("m", down_up, (Constraint("O", "up", R.HALF_UP),), centre_points)
    one_sided = MoveTemplate("m", down_up, (Constraint("O", "up", R.EDGE, Side.UP),), centre_points)
    with pytest.raises(ValueError, match="choose each row's side"):
        build_points(
            one_sided, FeatureTables(hand_spec), hand_spec, np.zeros(4, np.int64), B, X, np.random.default_rng()
        )
