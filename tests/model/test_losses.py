import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccss_pipeline.config import ContrastiveConfig
from ccss_pipeline.model.losses import PairOutputs, constraint_weights, counterfactual_loss, infonce_loss, total_loss
from ccss_pipeline.model.moves import MoveTemplate, get_move
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.spec import FeatureSpec, NumericalFeature
from tests.support.pairs import pair_batch

CENTRE = get_move("centre")


def _t(v, dtype=torch.float32, grad=False):
    return torch.tensor(v, dtype=dtype, requires_grad=grad)


def _loss(template, z_o, z_pts, direction, valid, cfg, f_is_up=None, has_pair=None, h_o=None, h_pts=None):
    pairs = pair_batch(template, direction, valid, f_is_up, has_pair)
    return counterfactual_loss(pairs, PairOutputs(z_o, z_pts, h_o, h_pts), cfg)


@pytest.fixture(scope="module")
def hand_spec() -> FeatureSpec:
    """Identity feature, boundaries [1, 2, 3] -> 4 buckets (the same as tests/model/test_moves.py)."""
    f = NumericalFeature(
        "x",
        1,
        "identity",
        0.0,
        1.0,
        [1.0, 2.0, 3.0],
        [0.5, 1.5, 2.5, 3.5],
        [0.5, 1.5, 2.5, 3.5],
        np.linspace(0.0, 4.0, 41).tolist(),
    )
    return FeatureSpec(categorical=[], numerical=[f])


def _hand_pairs(spec, move, x, b, y=1.0):
    return draw_pairs(
        np.array([[b]]), np.array([[x]], np.float32), np.array([y], np.float32), spec, np.array([1.0]), move=move
    )


# ------------------------------------------------------------------------------------------- basics
def test_margin_zero_when_ordering_holds():
    cfg = ContrastiveConfig(margin=0.1)
    # increasing and decreasing feature: z moves by >= m per step in the feature's direction
    z_o = _t([0.0, 0.0])
    good = _t([[-0.2, 0.2], [0.2, -0.2]])  # [down, up]
    assert _loss(CENTRE, z_o, good, [1.0, -1.0], [[True] * 3] * 2, cfg).item() == 0.0
    bad = good.flip(1)
    assert _loss(CENTRE, z_o, bad, [1.0, -1.0], [[True] * 3] * 2, cfg).item() > 0


@pytest.mark.parametrize("name", ["margin", "bpr", "infonce"])
def test_finite_and_unknown_loss(name):
    cfg = ContrastiveConfig(loss=name)
    h = torch.randn(4, 3)
    h_pts = torch.stack([h + 0.1, -h], 1)
    out = _loss(CENTRE, torch.zeros(4), torch.zeros(4, 2), [1.0] * 4, [[True] * 3] * 4, cfg, h_o=h, h_pts=h_pts)
    assert torch.isfinite(out) and out.item() > 0
    bad = ContrastiveConfig.model_construct(**(cfg.model_dump() | {"loss": "nope"}))
    with pytest.raises(ValueError, match="allowed"):
        _loss(CENTRE, torch.zeros(1), torch.zeros(1, 2), [1.0], [[True] * 3], bad)


@pytest.mark.parametrize("y,d", [(1, 1), (0, 1), (1, -1), (0, -1)])
def test_centre_pair_equals_paper_form(spec, y, d):
    """Without the anchor, margin = max(0, m − s(z_F − z_C)) and bpr = −log σ(s(z_F − z_C)/τ), with F/C
    from §3.3 (via draw_pairs) and s = +1 for y = 1, −1 for y = 0."""
    p = np.array([1.0, 0.0, 0.0]) if d == 1 else np.array([0.0, 1.0, 0.0])
    pair = draw_pairs(np.array([[3, 3, 3, 0]]), np.zeros((1, 4), np.float32), np.array([float(y)]), spec, p)
    f_is_up = torch.as_tensor(pair.f_is_up)
    gen = torch.Generator().manual_seed(y * 10 + d)
    z_o, z_pts = torch.randn(1, generator=gen), torch.randn(1, 2, generator=gen)  # [down, up]
    z_f = z_pts[0, 1] if pair.f_is_up[0] else z_pts[0, 0]
    z_c = z_pts[0, 0] if pair.f_is_up[0] else z_pts[0, 1]
    s = 1.0 if y == 1 else -1.0
    m, tau = 0.7, 0.3
    margin = _loss(
        CENTRE,
        z_o,
        z_pts,
        [float(d)],
        pair.valid,
        ContrastiveConfig(margin=m, anchor_on_original=False),
        f_is_up=f_is_up,
    )
    assert margin.item() == pytest.approx(max(0.0, m - s * (z_f - z_c).item()), abs=1e-6)
    bpr = _loss(
        CENTRE, z_o, z_pts, [float(d)], pair.valid, ContrastiveConfig(loss="bpr", temperature=tau), f_is_up=f_is_up
    )
    assert bpr.item() == pytest.approx(-F.logsigmoid(s * (z_f - z_c) / tau).item(), abs=1e-6)


@pytest.mark.parametrize("name", ["margin", "bpr"])
@pytest.mark.parametrize("y,d", [(1, 1), (0, 1), (1, -1), (0, -1)])
def test_gradient_pushes_logits_along_direction(spec, name, y, d):
    """After one step, z(up) - z(down) moves toward d in every (label, direction) case."""
    p = np.array([1.0, 0.0, 0.0]) if d == 1 else np.array([0.0, 1.0, 0.0])
    pair = draw_pairs(np.array([[3, 3, 3, 0]]), np.zeros((1, 4), np.float32), np.array([float(y)]), spec, p)
    assert pair.valid.all()
    z_o, z_pts = _t([0.0], grad=True), _t([[0.0, 0.0]], grad=True)
    direction = [float(spec.numerical[pair.feature[0]].direction)]
    loss = _loss(
        CENTRE,
        z_o,
        z_pts,
        direction,
        pair.valid,
        ContrastiveConfig(loss=name, margin=0.1),
        f_is_up=torch.as_tensor(pair.f_is_up),
    )
    loss.backward()
    g_down, g_up = z_pts.grad[0]
    # gradient descent step direction on (z_up - z_down) is -(g_up - g_down); must have sign d
    assert np.sign(-(g_up - g_down).item()) == d


def test_lambda_zero_is_plain_bce():
    z, y = torch.randn(8), torch.randint(0, 2, (8,)).float()
    lc = torch.tensor(5.0)
    assert torch.equal(total_loss(z, y, lc, 0.0), F.binary_cross_entropy_with_logits(z, y))
    assert torch.equal(total_loss(z, y, None, 2.0), F.binary_cross_entropy_with_logits(z, y))
    assert torch.allclose(total_loss(z, y, lc, 2.0), F.binary_cross_entropy_with_logits(z, y) + 10.0)


def test_mean_over_pairs_only():
    cfg = ContrastiveConfig(margin=1.0, anchor_on_original=False)
    z0 = torch.zeros(2)
    out = _loss(CENTRE, z0, torch.zeros(2, 2), [1.0, 1.0], [[True] * 3] * 2, cfg, has_pair=torch.tensor([True, False]))
    assert out.item() == pytest.approx(1.0)
    none = _loss(
        CENTRE, z0, torch.zeros(2, 2), [1.0, 1.0], [[True] * 3] * 2, cfg, has_pair=torch.tensor([False, False])
    )
    assert none.item() == 0.0


def test_invalid_constraints_do_not_count():
    cfg = ContrastiveConfig(margin=1.0, anchor_on_original=False)
    out = _loss(CENTRE, torch.zeros(2), torch.zeros(2, 2), [1.0, 1.0], [[True] * 3, [False] * 3], cfg)
    assert out.item() == pytest.approx(0.5)  # the second pair has no valid constraint: 0, averaged in


# -------------------------------------------------------------------------- edge buckets (§3.4)
def test_first_bucket_counts_one_hinge_not_two(hand_spec):
    """margin + anchor, a row in the first bucket: 'down' is O itself, so (down, up) and (O, up) are the same
    step; the loss is ONE max(0, m − Δ), not two. An inner row counts all three terms."""
    m = 0.1
    cfg = ContrastiveConfig(margin=m, anchor_on_original=True)
    first = _hand_pairs(hand_spec, "centre", x=0.3, b=0)
    np.testing.assert_array_equal(first.valid, [[True, True, False]])
    z_o, z_up = 0.0, -0.5  # violates the up constraint
    z_down = z_o  # 'down' holds O's value: the model gives it O's logit
    out = _loss(CENTRE, _t([z_o]), _t([[z_down, z_up]]), [1.0], first.valid, cfg)
    assert out.item() == pytest.approx(max(0.0, m - (z_up - z_o)))  # 0.6, not 1.2
    np.testing.assert_array_equal(
        constraint_weights(CENTRE, torch.as_tensor(first.valid), cfg).numpy(), [[0.0, 1.0, 0.0]]
    )

    last = _hand_pairs(hand_spec, "centre", x=3.6, b=3)
    np.testing.assert_array_equal(last.valid, [[True, False, True]])
    z_o, z_down = 0.0, 0.3  # violates the down constraint
    out = _loss(CENTRE, _t([z_o]), _t([[z_down, z_o]]), [1.0], last.valid, cfg)
    assert out.item() == pytest.approx(m - (z_o - z_down))  # 0.4

    inner = _hand_pairs(hand_spec, "centre", x=1.2, b=1)
    assert inner.valid.all()
    z_o, z_down, z_up = 0.0, 0.1, -0.2
    out = _loss(CENTRE, _t([z_o]), _t([[z_down, z_up]]), [1.0], inner.valid, cfg)
    expected = (m - (z_up - z_down)) + (m - (z_up - z_o)) + (m - (z_o - z_down))  # 0.4 + 0.3 + 0.2
    assert out.item() == pytest.approx(expected)
    assert expected == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["bpr", "infonce"])
def test_no_anchor_counts_endpoint_once_at_edge(hand_spec, name):
    """Without half-pairs (bpr, infonce, or margin without anchor) only the endpoint (or InfoNCE) counts,
    and it stays valid at an edge bucket."""
    cfg = ContrastiveConfig(loss=name)
    first = _hand_pairs(hand_spec, "centre", x=0.3, b=0)
    w = constraint_weights(CENTRE, torch.as_tensor(first.valid), cfg).numpy()
    np.testing.assert_array_equal(w, [[1.0 if name == "bpr" else 0.0, 0.0, 0.0]])


# ---------------------------------------------------------------------- edge constraints (§3.6)
@pytest.mark.parametrize("name", ["margin", "bpr", "infonce"])
def test_edge_constraints_use_edge_margin_and_weight(hand_spec, name):
    """The straddle pair's bucket-only step is max(0, m_e − Δ) · edge_weight whatever contrastive.loss is,
    and enters the total loss relative to λ."""
    pairs = _hand_pairs(hand_spec, "straddle", x=1.9, b=1)  # below = (1, 2.0), at = (2, 2.0)
    assert pairs.valid.all()
    t = get_move("straddle")
    z_o = _t([0.0])
    z_pts = _t([[-1.0, 1.0, 0.3, 0.1]])  # centre ordering holds by a lot; 'at' is BELOW 'below' by 0.2
    h_o = torch.tensor([[1.0, 0.0]])
    h_pts = torch.tensor([[[0.0, 1.0], [1.0, 0.1], [0.5, 0.5], [0.5, 0.5]]])
    args = dict(f_is_up=torch.as_tensor(pairs.f_is_up), h_o=h_o, h_pts=h_pts)
    base = dict(loss=name, margin=0.5, temperature=0.5)  # centre steps hold by >= 1
    no_edge = _loss(t, z_o, z_pts, [1.0], pairs.valid, ContrastiveConfig(**base, edge_weight=0.0), **args)
    m_e, w_e = 0.3, 2.5
    with_edge = _loss(
        t, z_o, z_pts, [1.0], pairs.valid, ContrastiveConfig(**base, edge_weight=w_e, edge_margin=m_e), **args
    )
    delta = 0.1 - 0.3
    assert (with_edge - no_edge).item() == pytest.approx(w_e * (m_e - delta))  # 2.5 * 0.5 = 1.25
    # edge_margin is the edge hinge's margin, not contrastive.margin: satisfied edge + m_e = 0 -> nothing
    z_ok = _t([[-1.0, 1.0, 0.1, 0.15]])
    zero_margin = _loss(t, z_o, z_ok, [1.0], pairs.valid, ContrastiveConfig(**base, edge_weight=w_e), **args)
    no_edge_ok = _loss(t, z_o, z_ok, [1.0], pairs.valid, ContrastiveConfig(**base, edge_weight=0.0), **args)
    assert zero_margin.item() == pytest.approx(no_edge_ok.item())
    # and the edge hinge is weighted relative to λ in the total loss
    lam = 3.0
    z, y = torch.zeros(1), torch.ones(1)
    bce = F.binary_cross_entropy_with_logits(z, y)
    assert (total_loss(z, y, with_edge, lam) - bce).item() == pytest.approx(lam * with_edge.item(), rel=1e-6)


def test_edge_move_uses_only_edge_hinges(hand_spec):
    """The `edge` move has no centre pair: its loss is the edge hinges over the valid steps only."""
    t = get_move("edge")
    pairs = _hand_pairs(hand_spec, "edge", x=1.2, b=1)  # nearer the lower edge: below -> at -> O
    np.testing.assert_array_equal(pairs.valid, [[False, True, True]])
    cfg = ContrastiveConfig(margin=5.0, edge_margin=0.1, edge_weight=2.0)
    z_o, z_pts = _t([0.0]), _t([[0.5, 0.2]])  # z(below)=0.5 > z(at)=0.2 > z(O)=0: both valid steps violated
    out = _loss(t, z_o, z_pts, [1.0], pairs.valid, cfg)
    expected = 2.0 * ((0.1 - (0.2 - 0.5)) + (0.1 - (0.0 - 0.2)))  # (O, below) is invalid: not counted
    assert out.item() == pytest.approx(expected)
    # decreasing feature: the same logits now satisfy both steps by more than m_e
    assert _loss(t, z_o, z_pts, [-1.0], pairs.valid, cfg).item() == 0.0


def test_infonce_with_edge_move_raises_naming_the_move():
    with pytest.raises(ValueError, match="'edge'"):
        _loss(
            get_move("edge"),
            torch.zeros(1),
            torch.zeros(1, 2),
            [1.0],
            [[True] * 3],
            ContrastiveConfig(loss="infonce"),
            h_o=torch.randn(1, 3),
            h_pts=torch.randn(1, 2, 3),
        )


@pytest.mark.parametrize("f_up", [True, False])
def test_infonce_matches_hand_formula_and_ignores_logits(f_up):
    """Centre move + infonce: −log softmax over cos(hO,hF), cos(hO,hC) (F per f_is_up); no logit term."""
    cfg = ContrastiveConfig(loss="infonce", temperature=0.5)
    h_o = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    h_pts = torch.tensor([[[0.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [-1.0, 0.0]]])  # [down, up]
    f_is_up = torch.tensor([f_up, f_up])
    z_pts = _t([[3.0, -3.0], [3.0, -3.0]], grad=True)  # badly ordered logits
    out = _loss(CENTRE, torch.zeros(2), z_pts, [1.0, 1.0], [[True] * 3] * 2, cfg, f_is_up=f_is_up, h_o=h_o, h_pts=h_pts)
    h_f = h_pts[:, 1] if f_up else h_pts[:, 0]
    h_c = h_pts[:, 0] if f_up else h_pts[:, 1]
    cos_f, cos_c = F.cosine_similarity(h_o, h_f, dim=-1), F.cosine_similarity(h_o, h_c, dim=-1)
    expected = -(cos_f / 0.5 - torch.logaddexp(cos_f / 0.5, cos_c / 0.5))
    torch.testing.assert_close(infonce_loss(h_o, h_f, h_c, 0.5), expected)
    assert out.item() == pytest.approx(expected.mean().item(), abs=1e-6)
    out.backward()
    assert z_pts.grad is None or torch.all(z_pts.grad == 0)


# ------------------------------------------------------------------------ constraints picked by role
@pytest.mark.parametrize("move", ["centre", "straddle", "decomposed", "path", "decomposed@0.5"])
@pytest.mark.parametrize(
    "cfg",
    [
        ContrastiveConfig(margin=0.4),
        ContrastiveConfig(margin=0.4, anchor_on_original=False),
        ContrastiveConfig(loss="bpr", temperature=0.3),
        ContrastiveConfig(loss="infonce", temperature=0.3),
    ],
    ids=["margin", "margin-no-anchor", "bpr", "infonce"],
)
def test_reordered_move_has_the_same_loss(hand_spec, move, cfg):
    """The loss selects the endpoint and the half-pairs by role: the same move with its points and
    constraints in reverse order gives the same loss (inner rows and both edge buckets)."""
    t = get_move(move)
    if cfg.loss == "infonce" and not t.has_centre_pair:
        pytest.skip("infonce needs a centre pair")
    x, b = np.array([[0.3], [1.2], [1.9], [3.6]], np.float32), np.array([[0], [1], [1], [3]])
    pairs = draw_pairs(b, x, np.array([1, 0, 1, 0], np.float32), hand_spec, np.array([1.0]), seed=1, move=move)
    reversed_t = MoveTemplate(f"{move}_reversed", t.points[::-1], t.constraints[::-1], t.build)
    gen = torch.Generator().manual_seed(0)
    z_o, z_pts = torch.randn(4, generator=gen), torch.randn(4, len(t.points), generator=gen)
    h_o, h_pts = torch.randn(4, 3, generator=gen), torch.randn(4, len(t.points), 3, generator=gen)
    f_is_up = torch.as_tensor(pairs.f_is_up)
    loss = _loss(t, z_o, z_pts, [1.0] * 4, pairs.valid, cfg, f_is_up=f_is_up, h_o=h_o, h_pts=h_pts)
    again = _loss(
        reversed_t,
        z_o,
        z_pts.flip(1),
        [1.0] * 4,
        pairs.valid[:, ::-1],
        cfg,
        f_is_up=f_is_up,
        h_o=h_o,
        h_pts=h_pts.flip(1),
    )
    assert loss.item() > 0 and again.item() == pytest.approx(loss.item(), rel=1e-6)
    w = constraint_weights(t, torch.as_tensor(pairs.valid), cfg)
    torch.testing.assert_close(
        constraint_weights(reversed_t, torch.as_tensor(pairs.valid[:, ::-1].copy()), cfg), w.flip(1)
    )
