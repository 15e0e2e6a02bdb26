import numpy as np
import pytest
import torch
from scipy import stats

from ccss_pipeline.model.synthesis import (
    PairTable,
    build_counterfactuals,
    directed_probabilities,
    draw_pairs,
    feature_probabilities,
)


def _draw(spec, inputs, p=None, seed=0):
    p = np.array([0.6, 0.4, 0.0]) if p is None else p
    return draw_pairs(inputs.bucket, inputs.dense, inputs.label, spec, p, seed=seed)


def test_feature_probabilities_floor_and_mask():
    p = feature_probabilities(np.array([0.0, 3.0, 1.0]), eps=0.5, drawable=np.array([True, True, False]))
    np.testing.assert_allclose(p, [0.5 / 3.5, 3.0 / 3.5, 0.0])
    with pytest.raises(ValueError):
        feature_probabilities(np.array([1.0]), drawable=np.array([False]))


def test_directed_probabilities_single_bucket_zero(spec):
    p = directed_probabilities(np.array([1.0, 1.0, 5.0, 9.0]), spec)  # free (undirected) dropped, flat masked
    assert p.shape == (3,) and p[2] == 0.0 and np.isclose(p.sum(), 1.0)


def test_pairs_move_exactly_one_feature_by_one_bucket(spec, inputs):
    before = (inputs.bucket.copy(), inputs.dense.copy(), inputs.label.copy())
    pairs = _draw(spec, inputs)
    for a, b in zip(before, (inputs.bucket, inputs.dense, inputs.label)):
        np.testing.assert_array_equal(a, b)  # inputs not mutated
    (df, bf), (dc, bc) = build_counterfactuals(
        torch.as_tensor(inputs.dense[pairs.row]), torch.as_tensor(inputs.bucket[pairs.row]), torch.as_tensor(pairs.feature),
        torch.as_tensor(pairs.f_bucket), torch.as_tensor(pairs.f_dense),
        torch.as_tensor(pairs.c_bucket), torch.as_tensor(pairs.c_dense))
    ob, od = inputs.bucket[pairs.row], inputs.dense[pairs.row]
    for d, b in ((df.numpy(), bf.numpy()), (dc.numpy(), bc.numpy())):
        changed = (b != ob) | (d != od)
        assert (changed.sum(1) <= 1).all()
        other = np.ones_like(changed)
        other[np.arange(len(pairs)), pairs.feature] = False
        assert not changed[other].any()
        moved = b[np.arange(len(pairs)), pairs.feature] - ob[np.arange(len(pairs)), pairs.feature]
        assert set(np.unique(moved)) <= {-1, 0, 1}
    # up is b+1, down b-1 (or the original at an edge), dense at the neighbour's centre
    k, r = pairs.feature, pairs.row
    b0 = inputs.bucket[r, k]
    nb = np.array([spec.numerical[j].n_buckets for j in k])
    np.testing.assert_array_equal(pairs.up_bucket, np.where(b0 + 1 < nb, b0 + 1, b0))
    np.testing.assert_array_equal(pairs.down_bucket, np.where(b0 > 0, b0 - 1, b0))
    centres = [np.asarray(spec.numerical[j].centres_dense, np.float32) for j in range(len(spec.numerical))]
    inner = b0 + 1 < nb
    np.testing.assert_allclose(pairs.up_dense[inner], [centres[j][u] for j, u in zip(k[inner], pairs.up_bucket[inner])])
    assert (pairs.up_bucket != pairs.down_bucket).all()


def test_edge_rule_uses_original_value(spec, inputs):
    pairs = _draw(spec, inputs)
    b0 = inputs.bucket[pairs.row, pairs.feature]
    x0 = inputs.dense[pairs.row, pairs.feature]
    top = b0 == 7
    bottom = b0 == 0
    assert top.any() and bottom.any()
    np.testing.assert_array_equal(pairs.up_bucket[top], b0[top])
    np.testing.assert_array_equal(pairs.up_dense[top], x0[top])
    np.testing.assert_array_equal(pairs.down_bucket[bottom], 0)
    np.testing.assert_array_equal(pairs.down_dense[bottom], x0[bottom])


def test_missing_bucket_rows_get_no_pair(spec, inputs):
    pairs = _draw(spec, inputs, p=np.array([1.0, 0.0, 0.0]))
    missing = inputs.bucket[:, 0] == spec.numerical[0].missing_bucket
    assert missing.any()
    assert set(pairs.row) == set(np.flatnonzero(~missing))


@pytest.mark.parametrize("y,d,f_up", [(1, 1, True), (0, 1, False), (1, -1, False), (0, -1, True)])
def test_factual_counterfactual_rule(spec, inputs, y, d, f_up):
    k = 0 if d == 1 else 1
    p = np.array([1.0, 0.0, 0.0]) if d == 1 else np.array([0.0, 1.0, 0.0])
    label = np.full(len(inputs), y, np.float32)
    pairs = draw_pairs(inputs.bucket, inputs.dense, label, spec, p, seed=3)
    assert (pairs.feature == k).all() and len(pairs) > 0
    assert (pairs.f_is_up == f_up).all()
    np.testing.assert_array_equal(pairs.f_bucket, pairs.up_bucket if f_up else pairs.down_bucket)


def test_frequencies_match_p_and_single_bucket_never_drawn(spec):
    from tests.model.conftest import make_inputs

    big = make_inputs(spec, 20_000, seed=5, missing_rate=0.0)
    p = directed_probabilities(np.array([3.0, 1.0, 0.0, 100.0]), spec)  # huge q on the single-bucket one
    pairs = draw_pairs(big.bucket, big.dense, big.label, spec, p, seed=11)
    counts = np.array([(pairs.feature == j).sum() for j in spec.directed_indices()])
    assert counts[2] == 0
    chi2 = stats.chisquare(counts[:2], f_exp=p[:2] * len(pairs))
    assert chi2.pvalue > 1e-3


def test_seeded_reproducible_and_frame_roundtrip(spec, inputs):
    a, b, c = _draw(spec, inputs, seed=4), _draw(spec, inputs, seed=4), _draw(spec, inputs, seed=5)
    np.testing.assert_array_equal(a.feature, b.feature)
    assert not np.array_equal(a.feature, c.feature)
    back = PairTable.from_frame(a.to_frame())
    for name in ("row", "feature", "up_bucket", "up_dense", "down_bucket", "down_dense", "f_is_up"):
        np.testing.assert_array_equal(getattr(back, name), getattr(a, name))
