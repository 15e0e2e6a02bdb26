"""The Lipschitz monotonic network (``model/monotone_net.py``): monotone by construction, measured by
the project's raw-grid sweep and by random perturbations, against two unconstrained models on the
same table (``tests/support/monotone_table.py``): the same network with every direction 0, and the
project's DNN backbone (bucket embeddings included), which also fails the edge test."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

lmn = pytest.importorskip(
    "monotonicnetworks", reason='monotonicnetworks is in the optional extra "compare": pip install -e ".[compare]"'
)

from ccss_pipeline.config import BackboneConfig  # noqa: E402
from ccss_pipeline.evaluation.monotonicity import DEFAULT_EPS  # noqa: E402
from ccss_pipeline.evaluation.raw_grid import raw_grid_report  # noqa: E402
from ccss_pipeline.lineage import StaleArtifactError  # noqa: E402
from ccss_pipeline.model.backbones import CTRModel  # noqa: E402
from ccss_pipeline.model.monotone_net import (  # noqa: E402
    MonotoneNet,
    MonotoneNetConfig,
    fit_monotone_net,
)
from ccss_pipeline.model.scoring import predict_logits, predict_proba, safe_auc, score_fn  # noqa: E402
from ccss_pipeline.spec import FeatureSpec  # noqa: E402
from tests.support.monotone_table import splits  # noqa: E402

GRID_LEVELS, GRID_ROWS = 200, 500
CFG = MonotoneNetConfig(max_epochs=20, patience=3)


@pytest.fixture(autouse=True)
def _threads():  # overrides tests/model/conftest.py's: one thread, the machine is shared
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return splits()


@pytest.fixture(scope="module")
def fitted(data):
    torch.set_num_threads(1)
    spec, train, valid, _ = data
    return fit_monotone_net(spec, train, valid, CFG)


@pytest.fixture(scope="module")
def twin(data):
    """The same network on the same inputs with every direction 0: no residual, no guarantee."""
    torch.set_num_threads(1)
    spec, train, valid, _ = data
    return fit_monotone_net(spec, train, valid, CFG.model_copy(update={"monotone": False}))


@pytest.fixture(scope="module")
def dnn(data):
    """The project's unconstrained DNN (dense values and bucket embeddings), 4 epochs of BCE."""
    torch.set_num_threads(1)
    spec, train, _, _ = data
    torch.manual_seed(0)
    model = CTRModel(spec, BackboneConfig(name="dnn", hidden_units=[64, 32]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    cat, dense, bucket = (torch.as_tensor(a) for a in (train.cat, train.dense, train.bucket))
    label = torch.as_tensor(train.label)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        order = torch.randperm(len(train), generator=g)
        for start in range(0, len(train), 256):
            i = order[start : start + 256]
            loss = nn.functional.binary_cross_entropy_with_logits(model(cat[i], dense[i], bucket[i])[0], label[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _sweep(scorer, data):
    spec, _, _, test = data
    return raw_grid_report(scorer, test, spec, levels=GRID_LEVELS, rows=GRID_ROWS, seed=0)


def test_raw_grid_reads_exactly_zero_where_unconstrained_models_do_not(data, fitted, twin, dnn):
    """Scored through ``model/scoring.py`` like every backbone: exactly 0 wrong steps and 0 wrong edge
    steps at the sweep's ε; both unconstrained models go the wrong way, so the measurement can fail."""
    free = _sweep(score_fn(twin.model), data)
    assert free.pooled["n_wrong_steps"] > 1000, free.per_feature  # measured: 62,408 of 298,500 (20.9%, on "flat")
    baseline = _sweep(score_fn(dnn), data)
    assert baseline.pooled["n_wrong_steps"] > 1000, baseline.per_feature  # measured: 46,729 (15.7%)
    assert baseline.pooled["edge_wrong"] > 100, baseline.per_edge  # measured: 4,000 of 7,000 (57%)

    result = _sweep(fitted.model.scorer(), data)
    assert result.pooled["n_steps"] > 0 and result.pooled["edge_pairs"] > 0
    assert result.pooled["n_wrong_steps"] == 0, result.per_feature
    assert result.pooled["edge_wrong"] == 0, result.per_edge
    assert result.pooled["monotone_row_share"] == 1.0


def _perturbation_check(model: MonotoneNet, spec: FeatureSpec, inputs, n: int = 20_000, seed: int = 0) -> None:
    """Random rows, random pairs of values x < x' of each directed feature (some 1e-3 apart, some up to
    3 σ; beyond the ±10 σ clip too), random non-missing bucket ids for it.

    The guarantee is one of real arithmetic: evaluated in float64, d·(z(x') − z(x)) ≥ 0 with no
    tolerance at all. Scored as the project scores (float32), rounding inside the layers can reverse a
    step where the network is flat in the feature (g cancelling the residual: ``flat`` has no effect
    in the data) by a few ulps of the logit — measured ≤ 1.5e-6 in logit (8 ulps), ≤ 2.1e-7 in
    probability, on 600,000 pairs —, so the float32 steps are held to the raw-grid sweep's own ε (1e-6 on p)."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, len(inputs), (n,), generator=g)
    cat, dense, bucket = (torch.as_tensor(a)[rows].clone() for a in (inputs.cat, inputs.dense, inputs.bucket))
    exact = copy.deepcopy(model).double()
    for k in spec.directed_indices():
        feature = spec.numerical[k]
        low = torch.randn(n, generator=g) * 4
        gap = torch.rand(n, generator=g) * torch.tensor([1e-3, 3.0])[torch.randint(0, 2, (n,), generator=g)]
        below, above = dense.clone(), dense.clone()
        below[:, k], above[:, k] = low, low + gap
        b1, b2 = bucket.clone(), bucket.clone()
        b1[:, k] = torch.randint(0, feature.n_buckets, (n,), generator=g)  # never read on the monotone path
        b2[:, k] = torch.randint(0, feature.n_buckets, (n,), generator=g)
        d = feature.direction
        with torch.no_grad():
            step64 = d * (exact.served_logit(cat, above.double(), b2) - exact.served_logit(cat, below.double(), b1))
            step32 = d * (
                torch.sigmoid(model.served_logit(cat, above, b2)) - torch.sigmoid(model.served_logit(cat, below, b1))
            )
        assert float(step64.min()) >= 0.0, (feature.name, float(step64.min()))
        assert float(step32.min()) >= -DEFAULT_EPS, (feature.name, float(step32.min()))


def test_non_decreasing_under_random_perturbations(data, fitted):
    spec, _, _, test = data
    _perturbation_check(fitted.model, spec, test)


def test_guarantee_holds_for_any_weights(data):
    """An untrained network with every weight ×50 (every norm constraint active) is monotone all the same."""
    spec, _, _, test = data
    torch.manual_seed(3)
    model = MonotoneNet(spec, MonotoneNetConfig()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(50.0)
    _perturbation_check(model, spec, test, seed=1)


def test_logit_is_the_packages_monotonic_wrapper(data, fitted):
    """The residual written out in ``forward`` is ``monotonicnetworks.MonotonicWrapper``'s, to the bit."""
    spec, _, _, test = data
    model = fitted.model
    cat, dense, bucket = (torch.as_tensor(a[:512]) for a in (test.cat, test.dense, test.bucket))
    wrapper = lmn.MonotonicWrapper(
        nn.Sequential(model.body, model.head),
        lipschitz_const=float(model.lipschitz),
        monotonic_constraints=model.constraints().tolist(),
    )
    with torch.no_grad():
        x = model.inputs(cat, dense, bucket)
        wide = model.wide(torch.cat([cat, bucket.index_select(1, model.free)], 1) + model.offsets).sum(dim=(1, 2))
        expected = wrapper(x).squeeze(-1) + wide
        z, hidden = model(cat, dense, bucket)
    torch.testing.assert_close(z, expected, rtol=1e-6, atol=1e-6)
    assert hidden.shape == (512, CFG.hidden_units[-1])
    assert model.constraints()[:3].tolist() == [1.0, -1.0, 1.0]  # pos, neg, flat; the rest 0
    assert not model.constraints()[3:].any()


def test_directed_bucket_ids_are_not_read(data, fitted):
    spec, _, _, test = data
    bucket = test.bucket.copy()
    for k in spec.directed_indices():
        present = bucket[:, k] != spec.numerical[k].missing_bucket
        bucket[present, k] = 0
    moved = type(test)(test.cat, test.dense, bucket, test.label, test.group)
    assert np.array_equal(predict_logits(fitted.model, moved), predict_logits(fitted.model, test))


def test_auc_on_a_learnable_table(data, fitted, twin):
    spec, _, _, test = data
    auc = safe_auc(test.label, predict_proba(fitted.model, test))
    assert auc > 0.6  # measured: 0.799 (twin 0.792, DNN 0.816, LightGBM 0.814, oracle 0.832)
    assert fitted.best_auc > 0.6 and 1 <= fitted.best_epoch <= CFG.max_epochs
    assert fitted.history[fitted.best_epoch - 1]["val_auc"] == max(h["val_auc"] for h in fitted.history)
    assert safe_auc(test.label, predict_proba(twin.model, test)) > 0.6


def test_save_load_gives_identical_logits(tmp_path, data, fitted):
    spec, _, _, test = data
    folder = fitted.save(tmp_path / "net", spec)
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt", "monotone_net.json"]
    meta = json.loads((folder / "monotone_net.json").read_text())
    assert meta["best_epoch"] == fitted.best_epoch and meta["config"]["lipschitz"] == CFG.lipschitz
    loaded = MonotoneNet.load(folder, spec)
    assert not loaded.training and loaded.cfg == fitted.model.cfg
    assert np.array_equal(predict_logits(loaded, test), predict_logits(fitted.model, test))
    other = FeatureSpec(categorical=spec.categorical, numerical=spec.numerical, source="another")
    with pytest.raises(StaleArtifactError, match="fit it again"):
        MonotoneNet.load(folder, other)


def test_fit_is_deterministic(data):
    spec, train, valid, test = data
    cfg = CFG.model_copy(update={"max_epochs": 2})
    a, b = (fit_monotone_net(spec, train, valid, cfg) for _ in range(2))
    assert np.array_equal(predict_logits(a.model, test), predict_logits(b.model, test))


def test_config_is_typed():
    with pytest.raises(ValueError, match="even"):
        MonotoneNetConfig(hidden_units=(63,))
    with pytest.raises(ValueError):
        MonotoneNetConfig(lipschitz=0.0)
    assert MonotoneNetConfig(hidden_units=()).hidden_units == ()
