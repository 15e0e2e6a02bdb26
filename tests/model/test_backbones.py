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


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_forward_ofc_matches_separate_forwards(spec, inputs, name):
    torch.manual_seed(0)
    model = CTRModel(spec, BackboneConfig(name=name, hidden_units=[16, 8])).eval()
    cat, dense, bucket = _batch(inputs, 10)
    rows = torch.tensor([0, 3, 7])
    k = torch.tensor([0, 1, 2])
    fb, fd = torch.tensor([1, 2, 3]), torch.tensor([0.5, -0.5, 1.0])
    cb, cd = torch.tensor([4, 5, 6]), torch.tensor([1.5, 0.1, -1.0])
    z_o, z_f, z_c, *_ = model.forward_ofc(cat, dense, bucket, rows, k, fb, fd, cb, cd)
    torch.testing.assert_close(z_o, model(cat, dense, bucket)[0])
    d2, b2 = dense[rows].clone(), bucket[rows].clone()
    d2[torch.arange(3), k], b2[torch.arange(3), k] = fd, fb
    torch.testing.assert_close(z_f, model(cat[rows], d2, b2)[0])
    d2[torch.arange(3), k], b2[torch.arange(3), k] = cd, cb
    torch.testing.assert_close(z_c, model(cat[rows], d2, b2)[0])


def test_forward_ofc_int_rows_equals_index_rows(spec, inputs):
    model = CTRModel(spec, BackboneConfig(hidden_units=[8])).eval()
    cat, dense, bucket = _batch(inputs, 10)
    args = (torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.5, -0.5]), torch.tensor([3, 4]), torch.tensor([1.0, 2.0]))
    a = model.forward_ofc(cat, dense, bucket, 3 - 1, *args)
    b = model.forward_ofc(cat, dense, bucket, torch.arange(2), *args)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def test_encoder_swap_equals_encoding_moved_rows(spec, inputs):
    enc = InputEncoder(spec, 4)
    cat, dense, bucket = _batch(inputs, 6)
    fields, d = enc(cat, dense, bucket)
    rows, k = torch.tensor([1, 4]), torch.tensor([0, 2])
    nb, nd = torch.tensor([2, 5]), torch.tensor([0.25, -1.0])
    f2, d2 = enc.swap(fields, d, rows, k, nb, nd)
    b3, d3 = bucket[rows].clone(), dense[rows].clone()
    b3[torch.arange(2), k], d3[torch.arange(2), k] = nb, nd
    ref_f, ref_d = enc(cat[rows], d3, b3)
    torch.testing.assert_close(f2, ref_f)
    torch.testing.assert_close(d2, ref_d)
    assert torch.equal(fields, enc(cat, dense, bucket)[0])  # original encoding untouched
