import numpy as np

from ccss_pipeline.config import ShapleyConfig
from ccss_pipeline.model.shapley import shapley_importance, shapley_values


def test_ignored_feature_gets_zero_importance(spec, inputs):
    def score(cat, dense, bucket):  # uses pos (dense) and neg (bucket), ignores free and flat
        return 2.0 * dense[:, 0] - 0.5 * bucket[:, 1]

    res = shapley_importance(score, inputs, spec, ShapleyConfig(n_samples=200, n_permutations=4, seed=1))
    assert res.q[0] > 0.5 and res.q[1] > 0.5
    assert res.q[2] == 0.0 and res.q[3] == 0.0
    assert np.isclose(res.p.sum(), 1.0) and res.p[2] == 0.0  # flat: single bucket
    assert res.p[0] > res.p[1] or res.p[1] > res.p[0]


def test_additive_model_exact_and_efficiency(spec, inputs):
    """For an additive model φ_k = f_k(x) - f_k(z) exactly; φ sums to f(x) - f(background) on average."""
    w = np.array([1.0, -2.0, 0.5, 0.0])

    def score(cat, dense, bucket):
        return dense @ w

    phi = shapley_values(score, inputs, n_samples=100, n_permutations=3, seed=0)
    assert phi.shape == (100, 4)
    q = np.abs(phi).mean(0)
    assert q[1] > q[0] > q[2] > 0 and q[3] == 0


def test_seeded(spec, inputs):
    score = lambda c, d, b: np.tanh(d[:, 0] * d[:, 1])  # noqa: E731
    a = shapley_importance(score, inputs, spec, ShapleyConfig(n_samples=50, n_permutations=2, seed=3))
    b = shapley_importance(score, inputs, spec, ShapleyConfig(n_samples=50, n_permutations=2, seed=3))
    np.testing.assert_array_equal(a.q, b.q)


def test_model_shapley_on_ctr_model(spec, inputs):
    import torch

    from ccss_pipeline.config import BackboneConfig
    from ccss_pipeline.model.backbones import CTRModel
    from ccss_pipeline.model.scoring import logit_fn

    torch.manual_seed(0)
    model = CTRModel(spec, BackboneConfig(hidden_units=[8]))
    cfg = ShapleyConfig(n_samples=64, n_permutations=2)
    res = shapley_importance(logit_fn(model, "cpu", cfg.batch_size), inputs, spec, cfg)
    assert res.q.shape == (4,) and (res.q >= 0).all() and res.q.sum() > 0
    assert set(res.to_dict()["p"]) == {"pos", "neg", "flat"}
