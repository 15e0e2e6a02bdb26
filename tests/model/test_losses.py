import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccss_pipeline.config import ContrastiveConfig
from ccss_pipeline.model.losses import contrastive_loss, total_loss
from ccss_pipeline.model.synthesis import draw_pairs


def _z(*v):
    return torch.tensor(v, dtype=torch.float32, requires_grad=True)


def test_margin_zero_when_ordering_holds():
    cfg = ContrastiveConfig(margin=0.1)
    # y=1: zF > zO > zC by >= m ; y=0: zF < zO < zC by >= m
    z_o, z_f, z_c = _z(0.0, 0.0), _z(0.2, -0.2), _z(-0.2, 0.2)
    loss = contrastive_loss("margin", z_o, z_f, z_c, None, None, None, torch.tensor([1.0, 0.0]), cfg)
    assert loss.item() == 0.0
    bad = contrastive_loss("margin", z_o, z_c, z_f, None, None, None, torch.tensor([1.0, 0.0]), cfg)
    assert bad.item() > 0


@pytest.mark.parametrize("name", ["margin", "bpr", "infonce"])
def test_unknown_and_finite(name):
    cfg = ContrastiveConfig()
    h = torch.randn(4, 3)
    out = contrastive_loss(name, torch.zeros(4), torch.zeros(4), torch.zeros(4), h, h + 0.1, -h, torch.ones(4), cfg)
    assert torch.isfinite(out)
    with pytest.raises(ValueError, match="allowed"):
        contrastive_loss("nope", torch.zeros(1), torch.zeros(1), torch.zeros(1), None, None, None, torch.ones(1), cfg)


@pytest.mark.parametrize("name", ["margin", "bpr"])
@pytest.mark.parametrize("y,d", [(1, 1), (0, 1), (1, -1), (0, -1)])
def test_gradient_pushes_logits_along_direction(spec, name, y, d):
    """After one step, z(up) - z(down) moves toward d in every (label, direction) case."""
    bucket = np.array([[3, 3, 3, 0]])
    dense = np.zeros((1, 4), np.float32)
    p = np.array([1.0, 0.0, 0.0]) if d == 1 else np.array([0.0, 1.0, 0.0])
    pair = draw_pairs(bucket, dense, np.array([float(y)]), spec, p, seed=0)
    z_up, z_down, z_o = _z(0.0), _z(0.0), _z(0.0)
    z_f, z_c = (z_up, z_down) if pair.f_is_up[0] else (z_down, z_up)
    loss = contrastive_loss(name, z_o, z_f, z_c, None, None, None, torch.tensor([float(y)]), ContrastiveConfig(margin=0.1))
    loss.backward()
    # gradient descent step direction on (z_up - z_down) is -(g_up - g_down); must have sign d
    assert np.sign(-(z_up.grad - z_down.grad).item()) == d


def test_lambda_zero_is_plain_bce():
    z, y = torch.randn(8), torch.randint(0, 2, (8,)).float()
    lc = torch.tensor(5.0)
    assert torch.equal(total_loss(z, y, lc, 0.0), F.binary_cross_entropy_with_logits(z, y))
    assert torch.allclose(total_loss(z, y, lc, 2.0), F.binary_cross_entropy_with_logits(z, y) + 10.0)


def test_mask_averages_valid_pairs_only():
    cfg = ContrastiveConfig(margin=1.0, anchor_on_original=False)
    z0 = torch.zeros(2)
    out = contrastive_loss("margin", z0, z0, z0, None, None, None, torch.ones(2), cfg, mask=torch.tensor([True, False]))
    assert out.item() == pytest.approx(1.0)
