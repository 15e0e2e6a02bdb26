"""Stratified anchors: an anchored move starts from a value of the drawn feature spread over its buckets
(a discrete feature: over its observed values) instead of the row's own, so sparse steps get pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccss_pipeline.config import ContrastiveConfig
from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.model.losses import PairOutputs, counterfactual_loss
from ccss_pipeline.model.moves import ANCHOR, ORIGIN, get_move, move_name
from ccss_pipeline.model.synthesis import PairTable, draw_pairs
from ccss_pipeline.spec import FeatureSpec, ModelInputs
from tests.support.frame_stages import fit_feature_spec, to_model_input
from tests.support.pairs import pair_batch
from tests.support.sparse_counts import SPARSE_CFG, SPARSE_SCHEMA, as_split, sparse_count_table


@pytest.fixture(scope="module")
def sparse() -> tuple[FeatureSpec, ModelInputs]:
    split = as_split(sparse_count_table(n=6000, seed=0))
    spec = fit_feature_spec(split, SPARSE_SCHEMA, SPARSE_CFG)
    return spec, ModelInputs.from_frame(to_model_input(split, spec), spec)


def _draw(spec, inputs, move, seed=3):
    p = np.zeros(len(spec.directed))
    p[0] = 1.0  # always the rare count
    return draw_pairs(inputs.bucket, inputs.dense, inputs.label, spec, p, seed=seed, move=move)


def test_anchored_template_replaces_the_row_by_its_anchor():
    base, anchored = get_move("decomposed"), get_move("decomposed@0.5")
    assert anchored.name == move_name("decomposed", 0.5) == "decomposed@0.5" and anchored.anchor_share == 0.5
    assert anchored.points == (ANCHOR, *base.points) and anchored.base == "decomposed"
    assert [c for c in anchored.constraints if ORIGIN in c[:2]] == []
    assert [(lo, hi) for lo, hi, *_ in anchored.constraints] == [
        (ANCHOR if lo == ORIGIN else lo, ANCHOR if hi == ORIGIN else hi) for lo, hi, *_ in base.constraints
    ]
    assert [(c.role, c.side) for c in anchored.constraints] == [(c.role, c.side) for c in base.constraints]
    assert move_name("decomposed", 0.0) == "decomposed" and not base.anchored
    for bad in ("decomposed@0", "decomposed@1.5", "decomposed@x", "sideways@0.5"):
        with pytest.raises(ValueError, match="counterfactual move"):
            get_move(bad)


def test_row_anchors_pile_up_where_rows_are_stratified_ones_reach_every_value(sparse):
    spec, inputs = sparse
    support = np.asarray(spec.numerical[0].support)
    rows = _draw(spec, inputs, "decomposed")
    at_zero = (inputs.bucket[rows.row, 0] == 0).mean()
    assert at_zero > 0.9  # the paper's anchor: the row's own count, almost always 0
    stratified = _draw(spec, inputs, "decomposed@1")
    bucket, _ = stratified.point(ANCHOR)
    # this count has one bucket per observed value, so buckets name the values
    assert spec.numerical[0].n_buckets == support.size
    counts = np.bincount(bucket, minlength=support.size)
    assert (counts > 0.5 * len(bucket) / support.size).all()  # every observed value anchors its share


def test_partial_share_keeps_the_row_value_for_the_rest(sparse):
    spec, inputs = sparse
    pairs = _draw(spec, inputs, "decomposed@0.3")
    bucket, dense = pairs.point(ANCHOR)
    own = (bucket == inputs.bucket[pairs.row, 0]) & (dense == inputs.dense[pairs.row, 0])
    assert 0.6 < own.mean() < 0.8  # 70% keep their own value (plus stratified draws that hit it)
    # the move is built around the anchor: its upper edge's "below" point sits in the anchor's bucket
    hi_below, _ = pairs.point("hi_below")  # (bucket, dense)
    has_up = bucket + 1 < spec.numerical[0].n_buckets
    np.testing.assert_array_equal(hi_below[has_up], bucket[has_up])


def test_continuous_anchors_spread_over_buckets(sparse):
    spec, inputs = sparse
    p = np.zeros(len(spec.directed))
    p[2] = 1.0  # the price
    pairs = draw_pairs(inputs.bucket, inputs.dense, inputs.label, spec, p, seed=1, move="decomposed@1")
    bucket, dense = pairs.point(ANCHOR)
    price = spec.numerical[2]
    assert set(np.unique(bucket)) == set(range(price.n_buckets))
    # each anchor's dense value lies inside its bucket (between the dense values of its two edges)
    edges = np.concatenate([[-np.inf], encode_numerical(np.asarray(price.boundaries), price)[0], [np.inf]])
    assert ((dense >= edges[bucket]) & (dense <= edges[bucket + 1])).all()


def test_default_share_draws_the_paper_pairs_and_the_table_round_trips(sparse):
    spec, inputs = sparse
    a = _draw(spec, inputs, "decomposed", seed=9)
    anchored = _draw(spec, inputs, "decomposed@0.5", seed=9)
    back = PairTable.from_frame(anchored.to_frame())
    assert back.move == "decomposed@0.5" and back.template.anchored
    np.testing.assert_array_equal(back.dense, anchored.dense)
    np.testing.assert_array_equal(a.row, anchored.row)  # the same rows and features; only the anchors differ
    np.testing.assert_array_equal(a.feature, anchored.feature)


def test_loss_constrains_the_anchor_not_the_row():
    """The row's own logit does not enter an anchored move's constraints; the anchor's does."""
    t = get_move("decomposed@1")
    q, c = len(t.points), len(t.constraints)
    z_pts = torch.linspace(0.0, 1.0, q)[None, :].repeat(2, 1)
    order = [t.index(p) - 1 for p in ("anchor", "down", "lo_below", "lo_at", "hi_below", "hi_at", "up")]
    raw = torch.tensor([3.0, 0.0, 1.0, 2.0, 4.0, 5.0, 6.0])  # monotone along the raw path
    z_pts[:, order] = raw
    cfg = ContrastiveConfig(weight=1.0, margin=0.01, edge_margin=0.001)
    pairs = pair_batch(t, [1.0, 1.0], np.ones((2, c), bool))
    any_row = counterfactual_loss(pairs, PairOutputs(torch.tensor([-50.0, 50.0]), z_pts), cfg)
    assert any_row.item() == 0.0  # whatever the row's own logit
    z_bad = z_pts.clone()
    z_bad[:, t.index(ANCHOR) - 1] = 10.0  # the anchor above its upper neighbour: wrong way
    assert counterfactual_loss(pairs, PairOutputs(torch.zeros(2), z_bad), cfg).item() > 0
