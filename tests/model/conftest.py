"""A tiny feature spec and a synthetic generator whose true logit rises in ``pos`` and falls in ``neg``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccss_pipeline.spec import QUANTILE_LEVELS, CategoricalFeature, FeatureSpec, ModelInputs, NumericalFeature

N_BUCKETS = 8


def _normal_feature(name: str, direction: int, n_buckets: int = N_BUCKETS) -> NumericalFeature:
    sample = np.random.default_rng(123).standard_normal(50_000)
    bounds = np.quantile(sample, np.linspace(0, 1, n_buckets + 1)[1:-1]) if n_buckets > 1 else np.array([])
    b = np.searchsorted(bounds, sample, side="right")
    centres = [float(np.median(sample[b == i])) for i in range(n_buckets)]
    sketch = np.quantile(sample, np.linspace(0, 1, QUANTILE_LEVELS)).tolist()
    return NumericalFeature(name, direction, "identity", 0.0, 1.0, [float(x) for x in bounds], centres, centres, sketch)


def make_spec() -> FeatureSpec:
    return FeatureSpec(
        categorical=[CategoricalFeature("user", 30), CategoricalFeature("item", 20)],
        numerical=[
            _normal_feature("pos", +1),
            _normal_feature("neg", -1),
            _normal_feature("free", 0),
            _normal_feature("flat", +1, n_buckets=1),
        ],
    )


def make_inputs(spec: FeatureSpec, n: int, seed: int = 0, missing_rate: float = 0.05) -> ModelInputs:
    """Rows with consistent dense/bucket values; true logit increases in ``pos``, decreases in ``neg``."""
    rng = np.random.default_rng(seed)
    k = len(spec.numerical)
    raw = rng.standard_normal((n, k)).astype(np.float32)
    bucket = np.stack(
        [np.searchsorted(np.asarray(f.boundaries), raw[:, j], side="right") for j, f in enumerate(spec.numerical)], 1
    ).astype(np.int64)
    dense = raw.copy()
    miss = rng.random(n) < missing_rate
    bucket[miss, 0] = spec.numerical[0].missing_bucket
    dense[miss, 0] = 0.0
    cat = np.stack([rng.integers(0, c.vocab_size, n) for c in spec.categorical], 1).astype(np.int64)
    user_bias = np.random.default_rng(7).normal(0, 0.5, spec.categorical[0].vocab_size)
    logit = 1.2 * dense[:, 0] - 0.8 * dense[:, 1] + 0.3 * np.sin(2 * dense[:, 2]) + user_bias[cat[:, 0]] - 0.3
    prob = 1 / (1 + np.exp(-logit))
    label = (rng.random(n) < prob).astype(np.float32)
    return ModelInputs(cat=cat, dense=dense, bucket=bucket, label=label, group=cat[:, 0].copy(), oracle=prob)


def violation_rate(score, inputs: ModelInputs, spec: FeatureSpec, eps: float = 1e-6) -> float:
    """Share of (row, existing neighbour) pairs of directed features where the prediction moves the wrong way."""
    base = score(inputs.cat, inputs.dense, inputs.bucket)
    bad, total = 0, 0
    for k in spec.directed_indices():
        f = spec.numerical[k]
        centres = np.asarray(f.centres_dense, np.float32)
        b = inputs.bucket[:, k]
        for step in (+1, -1):
            nb = b + step
            ok = (b < f.n_buckets) & (nb >= 0) & (nb < f.n_buckets)
            if not ok.any():
                continue
            dense, bucket = inputs.dense[ok].copy(), inputs.bucket[ok].copy()
            bucket[:, k] = nb[ok]
            dense[:, k] = centres[nb[ok]]
            moved = score(inputs.cat[ok], dense, bucket)
            bad += int((f.direction * step * (moved - base[ok]) < -eps).sum())
            total += int(ok.sum())
    return bad / max(total, 1)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def spec() -> FeatureSpec:
    return make_spec()


@pytest.fixture(scope="session")
def inputs(spec: FeatureSpec) -> ModelInputs:
    return make_inputs(spec, 512, seed=1)
