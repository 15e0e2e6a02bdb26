import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.model.moves import MOVES, ConstraintRole, get_move
from ccss_pipeline.model.synthesis import (
    PairLookup,
    PairTable,
    directed_probabilities,
    draw_pairs,
    feature_probabilities,
)
from tests.model.conftest import make_inputs

ALL_MOVES = sorted(MOVES)
P_DEFAULT = np.array([0.6, 0.4, 0.0])  # over spec.directed = (pos, neg, flat)


def _draw(spec, inputs, p=None, seed=0, move="centre", label=None):
    p = P_DEFAULT if p is None else p
    label = inputs.label if label is None else label
    return draw_pairs(inputs.bucket, inputs.dense, label, spec, p, seed=seed, move=move)


def _point_rows(inputs, pairs):
    """Full (dense, bucket) rows of every point: the row of O with only feature k replaced."""
    ar = np.arange(len(pairs))
    out = []
    for j in range(pairs.bucket.shape[1]):
        d, b = inputs.dense[pairs.row].copy(), inputs.bucket[pairs.row].copy()
        d[ar, pairs.feature], b[ar, pairs.feature] = pairs.dense[:, j], pairs.bucket[:, j]
        out.append((d, b))
    return out


# ------------------------------------------------------------------------------ draw probabilities
def test_feature_probabilities_floor_and_mask():
    p = feature_probabilities(np.array([0.0, 3.0, 1.0]), eps=0.5, drawable=np.array([True, True, False]))
    np.testing.assert_allclose(p, [0.5 / 3.5, 3.0 / 3.5, 0.0])
    with pytest.raises(ValueError):
        feature_probabilities(np.array([1.0]), drawable=np.array([False]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.5])
def test_feature_probabilities_reject_nan_and_negative(bad):
    """A failed Shapley estimate (NaN) must raise, not be floored at eps."""
    with pytest.raises(ValueError, match="finite"):
        feature_probabilities(np.array([1.0, bad, 2.0]))
    with pytest.raises(ValueError, match="finite"):
        feature_probabilities(np.array([1.0, bad, 2.0]), drawable=np.array([True, False, True]))


def test_directed_probabilities_single_bucket_zero(spec):
    p = directed_probabilities(np.array([1.0, 1.0, 5.0, 9.0]), spec)  # free (undirected) dropped, flat masked
    assert p.shape == (3,) and p[2] == 0.0 and np.isclose(p.sum(), 1.0)
    np.testing.assert_allclose(p[:2], [0.5, 0.5])


@pytest.mark.parametrize("where", [0, 1, 3])  # pos, neg, flat (all directed)
def test_directed_probabilities_reject_nan(spec, where):
    q = np.array([1.0, 1.0, 5.0, 9.0])
    q[where] = np.nan
    with pytest.raises(ValueError, match="finite"):
        directed_probabilities(q, spec)


def test_draw_pairs_rejects_bad_p_and_unknown_move(spec, inputs):
    with pytest.raises(ValueError, match="finite"):
        _draw(spec, inputs, p=np.array([np.nan, 0.5, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        _draw(spec, inputs, p=np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="allowed"):
        _draw(spec, inputs, move="sideways")


# --------------------------------------------------------------------------------------- the moves
@pytest.mark.parametrize("move", ALL_MOVES)
def test_pairs_move_exactly_one_feature_by_at_most_one_bucket(spec, inputs, move):
    before = (inputs.bucket.copy(), inputs.dense.copy(), inputs.label.copy())
    pairs = _draw(spec, inputs, move=move)
    for a, b in zip(before, (inputs.bucket, inputs.dense, inputs.label), strict=True):
        np.testing.assert_array_equal(a, b)  # inputs not mutated
    t = get_move(move)
    assert pairs.bucket.shape == pairs.dense.shape == (len(pairs), len(t.points))
    assert pairs.valid.shape == (len(pairs), len(t.constraints))
    assert pairs.bucket.dtype == np.int64 and pairs.dense.dtype == np.float32 and pairs.valid.dtype == bool
    ar = np.arange(len(pairs))
    ob, od = inputs.bucket[pairs.row], inputs.dense[pairs.row]
    b0 = ob[ar, pairs.feature]
    assert (b0 < 8).all()  # never drawn on a missing value
    for j, (d, b) in enumerate(_point_rows(inputs, pairs)):
        changed = (b != ob) | (d != od)
        other = np.ones_like(changed)
        other[ar, pairs.feature] = False
        assert not changed[other].any()  # every other feature stays as in O
        assert (changed.sum(1) <= 1).all()
        step = pairs.bucket[:, j] - b0
        assert set(np.unique(step)) <= {-1, 0, 1}, t.points[j]
        assert ((pairs.bucket[:, j] >= 0) & (pairs.bucket[:, j] < 8)).all()  # never the missing bucket
    assert np.isfinite(pairs.dense).all()
    # at least one point of every pair really moves
    assert ((pairs.bucket != b0[:, None]) | (pairs.dense != od[ar, pairs.feature][:, None])).any(1).all()


@pytest.mark.parametrize("move", ALL_MOVES)
def test_points_encode_to_their_bucket(spec, inputs, move):
    """Dense and bucket move together: a centre/within point's dense value encodes to its bucket; an edge
    point sits exactly on boundary j (as the model's float32 sees it) with bucket j ("below") or j + 1 ("at")."""
    pairs = _draw(spec, inputs, move=move)
    for j, name in enumerate(get_move(move).points):
        for k in np.unique(pairs.feature):
            f = spec.numerical[k]
            sel = pairs.feature == k
            bucket, dense = pairs.bucket[sel, j], pairs.dense[sel, j]
            if name in ("down", "up", "centre"):  # a bucket's centre or a value drawn inside it
                _, enc = encode_numerical(dense.astype(np.float64), f)  # identity, mean 0, std 1: dense = raw
                np.testing.assert_array_equal(enc, bucket, err_msg=name)
                continue
            bounds = np.asarray(f.boundaries, np.float32)
            real = dense != inputs.dense[pairs.row[sel], k]  # not the absent stand-in (O's own value)
            assert real.any()
            edge_index = bucket[real] if name.endswith("below") else bucket[real] - 1
            assert ((edge_index >= 0) & (edge_index < bounds.size)).all(), name
            np.testing.assert_array_equal(dense[real], bounds[edge_index], err_msg=name)


@pytest.mark.parametrize("move", ALL_MOVES)
def test_valid_constraints_follow_raw_order(spec, inputs, move):
    """Every valid constraint (lower, higher) goes up in raw value; edge steps are bucket-only (same dense,
    bucket + 1) or dense-only (same bucket, dense not lower); main steps move the bucket up."""
    pairs = _draw(spec, inputs, move=move)
    t = get_move(move)
    assert len(pairs) > 0
    b = np.concatenate([inputs.bucket[pairs.row, pairs.feature][:, None], pairs.bucket], 1)
    d = np.concatenate([inputs.dense[pairs.row, pairs.feature][:, None], pairs.dense], 1)
    assert pairs.valid.any(0).all()  # every constraint is valid for some row
    for c, (lo, hi, role, _) in enumerate(t.constraints):
        v = pairs.valid[:, c]
        i, j = t.index(lo), t.index(hi)
        db, dd = b[v, j] - b[v, i], d[v, j] - d[v, i]
        if role.is_edge:
            bucket_only = (db == 1) & (dd == 0)
            dense_only = (db == 0) & (dd >= 0)
            assert (bucket_only | dense_only).all(), (lo, hi)
        else:
            assert (db >= 1).all() and (dd > 0).all(), (lo, hi)


def test_centre_up_is_next_bucket_centre_down_is_previous(spec, inputs):
    pairs = _draw(spec, inputs)
    k, r = pairs.feature, pairs.row
    b0 = inputs.bucket[r, k]
    nb = np.array([spec.numerical[j].n_buckets for j in k])
    up_b, up_d = pairs.point("up")
    down_b, down_d = pairs.point("down")
    np.testing.assert_array_equal(up_b, np.where(b0 + 1 < nb, b0 + 1, b0))
    np.testing.assert_array_equal(down_b, np.where(b0 > 0, b0 - 1, b0))
    centres = [np.asarray(f.centres_dense, np.float32) for f in spec.numerical]
    inner_up, inner_down = b0 + 1 < nb, b0 > 0
    np.testing.assert_array_equal(
        up_d[inner_up], [centres[j][u] for j, u in zip(k[inner_up], up_b[inner_up], strict=True)]
    )
    np.testing.assert_array_equal(
        down_d[inner_down], [centres[j][u] for j, u in zip(k[inner_down], down_b[inner_down], strict=True)]
    )
    assert (up_b != down_b).all()
    inner = inner_up & inner_down
    assert inner.any() and pairs.valid[inner].all()


@pytest.mark.parametrize("move", ALL_MOVES)
def test_edge_rule_uses_original_value(spec, inputs, move):
    """Where a neighbour does not exist, its points hold the original value and constraints through it are invalid."""
    pairs = _draw(spec, inputs, move=move)
    t = get_move(move)
    b0 = inputs.bucket[pairs.row, pairs.feature]
    x0 = inputs.dense[pairs.row, pairs.feature]
    top, bottom = b0 == 7, b0 == 0
    assert top.any() and bottom.any()
    absent = {"up": top, "hi_below": top, "hi_at": top, "down": bottom, "lo_below": bottom, "lo_at": bottom}
    for name, rows in absent.items():
        if name not in t.points:
            continue
        b, d = pairs.point(name)
        np.testing.assert_array_equal(b[rows], b0[rows], err_msg=name)
        np.testing.assert_array_equal(d[rows], x0[rows], err_msg=name)
        for c, con in enumerate(t.constraints):
            if name in (con.lower, con.higher) and con.role is not ConstraintRole.ENDPOINT:
                assert not pairs.valid[rows, c].any(), (name, con)
    for c in t.columns(ConstraintRole.ENDPOINT):  # the centre endpoint stays valid: one real neighbour against O
        assert pairs.valid[top | bottom, c].all()


def test_missing_bucket_rows_get_no_pair_when_nothing_else_is_drawable(spec, inputs):
    pairs = _draw(spec, inputs, p=np.array([1.0, 0.0, 0.0]))
    missing = inputs.bucket[:, 0] == spec.numerical[0].missing_bucket
    assert missing.any()
    assert set(pairs.row) == set(np.flatnonzero(~missing))
    assert (pairs.feature == 0).all()


@pytest.mark.parametrize("move", ALL_MOVES)
def test_missing_feature_is_redrawn_among_present_ones(spec, move):
    x = make_inputs(spec, 400, seed=9, missing_rate=0.0)
    bucket, dense = x.bucket.copy(), x.dense.copy()
    pos_missing = np.arange(400) % 4 == 1
    both_missing = np.arange(400) % 4 == 2
    bucket[pos_missing | both_missing, 0], dense[pos_missing | both_missing, 0] = 8, 0.0
    bucket[both_missing, 1], dense[both_missing, 1] = 8, 0.0
    # almost all weight on 'pos': a row without it must still get a pair, on 'neg'
    p = np.array([0.999, 0.001, 0.0])
    pairs = draw_pairs(bucket, dense, x.label, spec, p, seed=1, move=move)
    assert set(pairs.row) == set(np.flatnonzero(~both_missing))  # all-missing rows get no pair
    on_pos_missing = np.isin(pairs.row, np.flatnonzero(pos_missing))
    assert on_pos_missing.sum() == pos_missing.sum()
    assert (pairs.feature[on_pos_missing] == 1).all()
    assert (pairs.feature[~on_pos_missing] == 0).mean() > 0.98  # the others still follow p
    assert (pairs.bucket < 8).all()


@pytest.mark.parametrize("y,d,f_up", [(1, 1, True), (0, 1, False), (1, -1, False), (0, -1, True)])
def test_factual_counterfactual_rule(spec, inputs, y, d, f_up):
    k = 0 if d == 1 else 1
    p = np.array([1.0, 0.0, 0.0]) if d == 1 else np.array([0.0, 1.0, 0.0])
    label = np.full(len(inputs), y, np.float32)
    pairs = draw_pairs(inputs.bucket, inputs.dense, label, spec, p, seed=3)
    assert (pairs.feature == k).all() and len(pairs) > 0
    assert (pairs.f_is_up == f_up).all()


def test_frequencies_match_p_and_single_bucket_never_drawn(spec):
    big = make_inputs(spec, 20_000, seed=5, missing_rate=0.0)
    p = directed_probabilities(np.array([3.0, 1.0, 0.0, 100.0]), spec)  # huge q on the single-bucket one
    pairs = draw_pairs(big.bucket, big.dense, big.label, spec, p, seed=11)
    assert len(pairs) == len(big)
    counts = np.array([(pairs.feature == j).sum() for j in spec.directed_indices()])
    assert counts[2] == 0
    chi2 = stats.chisquare(counts[:2], f_exp=p[:2] * len(pairs))
    assert chi2.pvalue > 1e-3
    # the test has power: a wrong p (uniform) is rejected
    assert stats.chisquare(counts[:2], f_exp=[len(pairs) / 2] * 2).pvalue < 1e-6
    # a single-bucket feature is never drawn even when it is the only directed feature with weight
    single = draw_pairs(big.bucket, big.dense, big.label, spec, np.array([0.0, 0.0, 1.0]), seed=11)
    assert len(single) == 0


@pytest.mark.parametrize("move", ALL_MOVES)
def test_seeded_reproducible_and_frame_roundtrip(spec, inputs, move):
    a = _draw(spec, inputs, seed=4, move=move)
    b = _draw(spec, inputs, seed=4, move=move)
    c = _draw(spec, inputs, seed=5, move=move)
    for name in ("row", "feature", "f_is_up", "bucket", "dense", "valid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.feature, c.feature)
    frame = a.to_frame()
    assert len(frame) == len(a) and (frame["move"].astype(str) == move).all()
    back = PairTable.from_frame(frame)
    assert back.move == move
    for name in ("row", "feature", "f_is_up", "bucket", "dense", "valid"):
        np.testing.assert_array_equal(getattr(back, name), getattr(a, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(a, name).dtype, name


def test_from_frame_rejects_mixed_or_unlabelled_tables(spec, inputs):
    a = _draw(spec, inputs, move="centre").to_frame()
    b = _draw(spec, inputs, move="within").to_frame()
    mixed = pd.concat([a.astype({"move": str}), b.astype({"move": str})], ignore_index=True)
    with pytest.raises(ValueError, match="mixes"):
        PairTable.from_frame(mixed)
    with pytest.raises(KeyError, match="move"):
        PairTable.from_frame(a.drop(columns="move"))
    with pytest.raises(KeyError, match="valid_0"):
        PairTable.from_frame(a.drop(columns="valid_0"))


def test_pair_lookup_layout(spec, inputs):
    pairs = _draw(spec, inputs, p=np.array([1.0, 0.0, 0.0]), move="straddle")  # rows missing 'pos': no pair
    q, c = 4, 4
    lk = PairLookup(pairs, len(inputs), spec, torch.device("cpu"))
    assert lk.n_points == q and lk.n_constraints == c and lk.template.name == "straddle"
    ints, floats = lk.ints.numpy(), lk.floats.numpy()
    no_pair = np.setdiff1d(np.arange(len(inputs)), pairs.row)
    assert no_pair.size > 0 and (ints[no_pair, 0] == 0).all() and (floats[no_pair, 1 + q :] == 0).all()
    np.testing.assert_array_equal(ints[pairs.row, 0], 1)
    np.testing.assert_array_equal(ints[pairs.row, 1], pairs.feature)
    np.testing.assert_array_equal(ints[pairs.row, 2 : 2 + q], pairs.bucket)
    np.testing.assert_array_equal(ints[pairs.row, 2 + q], pairs.f_is_up)
    np.testing.assert_array_equal(floats[pairs.row, 0], [spec.numerical[k].direction for k in pairs.feature])
    np.testing.assert_array_equal(floats[pairs.row, 1 : 1 + q], pairs.dense)
    np.testing.assert_array_equal(floats[pairs.row, 1 + q :], pairs.valid)
