import pytest
import torch

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.model.backbones import BACKBONES, CTRModel, build_backbone
from ccss_pipeline.model.encoders import InputEncoder


def _batch(inputs, n=16):
    return (torch.as_tensor(inputs.cat[:n]), torch.as_tensor(inputs.dense[:n]), torch.as_tensor(inputs.bucket[:n]))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_shapes_finite(spec, inputs, name):
    model = CTRModel(spec, BackboneConfig(name=name, hidden_units=[16, 8]))
    z, h = model(*_batch(inputs))
    assert z.shape == (16,) and h.shape == (16, 8)
    assert torch.isfinite(z).all() and torch.isfinite(h).all()
    z.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_backbone(spec):
    with pytest.raises(ValueError, match="allowed"):
        build_backbone("transformer", spec, BackboneConfig())


def test_encoder_init_std_is_small(spec):
    enc = InputEncoder(spec, 8, init_std=1e-2)
    assert 0.005 < enc.table.weight.std().item() < 0.02


def _moved(cat, dense, bucket, p, k, pts_bucket, pts_dense):
    """Reference: each point's rows built by hand (row copy, feature k replaced)."""
    ar = torch.arange(p)
    out = []
    for j in range(pts_bucket.shape[1]):
        d2, b2 = dense[:p].clone(), bucket[:p].clone()
        d2[ar, k], b2[ar, k] = pts_dense[:, j], pts_bucket[:, j]
        out.append((cat[:p], d2, b2))
    return out


def _points(q):
    """Moves of rows 0..2 of a batch of 10: features 0, 1, 2 to Q points each."""
    g = torch.Generator().manual_seed(q)
    k = torch.tensor([0, 1, 2])
    pts_bucket = torch.randint(0, 8, (3, q), generator=g)
    pts_dense = torch.randn(3, q, generator=g)
    return 3, k, pts_bucket, pts_dense


@pytest.mark.parametrize("q", [1, 2, 4])
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_forward_points_matches_separate_forwards(spec, inputs, name, q):
    torch.manual_seed(0)
    model = CTRModel(spec, BackboneConfig(name=name, hidden_units=[16, 8])).eval()
    cat, dense, bucket = _batch(inputs, 10)
    p, k, pb, pd = _points(q)
    z_o, z_pts, h_o, h_pts = model.forward_points(cat, dense, bucket, p, k, pb, pd)
    assert z_o.shape == (10,) and z_pts.shape == (p, q) and h_o.shape == (10, 8) and h_pts.shape == (p, q, 8)
    z_ref, h_ref = model(cat, dense, bucket)
    torch.testing.assert_close(z_o, z_ref)
    torch.testing.assert_close(h_o, h_ref)
    for j, rows in enumerate(_moved(cat, dense, bucket, p, k, pb, pd)):
        z_j, h_j = model(*rows)
        torch.testing.assert_close(z_pts[:, j], z_j)
        torch.testing.assert_close(h_pts[:, j], h_j)
    # the moved logits really differ from O (the swap took effect)
    assert not torch.allclose(z_pts[:, 0], z_o[:p])


def test_forward_points_gradients_reach_moved_embeddings(spec, inputs):
    """The counterfactual logits are differentiable w.r.t. the moved bucket's embedding row."""
    model = CTRModel(spec, BackboneConfig(hidden_units=[8]))
    cat, dense, bucket = _batch(inputs, 4)
    _, z_pts, _, _ = model.forward_points(
        cat, dense, bucket, 1, torch.tensor([0]), torch.tensor([[6, 7]]), torch.tensor([[1.0, 2.0]])
    )
    z_pts.sum().backward()
    enc = model.encoder
    row = (enc.bkt_offsets[0] + 7).item()  # feature 0, bucket 7
    assert enc.table.weight.grad[row].abs().sum() > 0


def test_encode_points_equals_encoding_moved_rows(spec, inputs):
    enc = InputEncoder(spec, 4)
    cat, dense, bucket = _batch(inputs, 6)
    before = (cat.clone(), dense.clone(), bucket.clone())
    p, k, pb, pd = _points(3)
    all_f, all_d = enc.encode_points(cat, dense, bucket, p, k, pb, pd)
    assert all_f.shape == (6 + 3 * p, enc.n_fields, 4) and all_d.shape == (6 + 3 * p, dense.shape[1])
    ref_f, ref_d = enc(cat, dense, bucket)
    torch.testing.assert_close(all_f[:6], ref_f)
    torch.testing.assert_close(all_d[:6], ref_d)
    for j, rows in enumerate(_moved(cat, dense, bucket, p, k, pb, pd)):  # point-major blocks
        f_j, d_j = enc(*rows)
        torch.testing.assert_close(all_f[6 + j * p : 6 + (j + 1) * p], f_j)
        torch.testing.assert_close(all_d[6 + j * p : 6 + (j + 1) * p], d_j)
    for a, b in zip(before, (cat, dense, bucket), strict=True):
        assert torch.equal(a, b)  # inputs not mutated
