"""A seeded table on which an unconstrained model goes the wrong way and a monotone one cannot.

The spec is :func:`tests.model.conftest.make_spec`'s shape (``pos`` +1, ``neg`` −1, ``free`` 0 and ``flat``
+1 with one bucket; users and items), built here so the table does not depend on a conftest import.
The true click logit rises in ``pos`` and falls in ``neg`` on the whole, with a wiggle on top that goes
the other way over part of each range (slope 1 + 2.4·cos 3x dips below 0): a flexible unconstrained
model learns the wiggle, hence wrong raw-grid steps; a model monotone by construction cannot.
Dense values and bucket ids are encoded from the raw values by the project's own
:func:`~ccss_pipeline.encoding.encode_numerical`, exactly as the raw-grid sweep encodes its grid.
"""

from __future__ import annotations

import numpy as np

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.spec import QUANTILE_LEVELS, CategoricalFeature, FeatureSpec, ModelInputs, NumericalFeature

N_BUCKETS = 8


def _normal_feature(name: str, direction: int, n_buckets: int = N_BUCKETS) -> NumericalFeature:
    sample = np.random.default_rng(123).standard_normal(50_000)
    bounds = np.quantile(sample, np.linspace(0, 1, n_buckets + 1)[1:-1]) if n_buckets > 1 else np.array([])
    b = np.searchsorted(bounds, sample, side="right")
    centres = [float(np.median(sample[b == i])) for i in range(n_buckets)]
    sketch = np.quantile(sample, np.linspace(0, 1, QUANTILE_LEVELS)).tolist()
    counts = np.bincount(b, minlength=n_buckets).tolist()
    return NumericalFeature(
        name, direction, "identity", 0.0, 1.0, [float(x) for x in bounds], centres, centres, sketch, [], counts
    )


def wiggle_spec() -> FeatureSpec:
    return FeatureSpec(
        categorical=[CategoricalFeature("user", 30), CategoricalFeature("item", 20)],
        numerical=[
            _normal_feature("pos", +1),
            _normal_feature("neg", -1),
            _normal_feature("free", 0),
            _normal_feature("flat", +1, n_buckets=1),
        ],
        source="unit-test",
    )


def wiggle_inputs(spec: FeatureSpec, n: int, seed: int, missing_rate: float = 0.05) -> ModelInputs:
    """``n`` rows; 5% of ``pos`` missing (missing bucket, dense 0), as real tables have them."""
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((n, len(spec.numerical)))
    encoded = [encode_numerical(raw[:, j], f) for j, f in enumerate(spec.numerical)]
    dense = np.stack([d for d, _ in encoded], 1).astype(np.float32)
    bucket = np.stack([b for _, b in encoded], 1).astype(np.int64)
    cat = np.stack([rng.integers(0, c.vocab_size, n) for c in spec.categorical], 1).astype(np.int64)
    user_bias = np.random.default_rng(7).normal(0, 0.8, spec.categorical[0].vocab_size)
    pos, neg, free = raw[:, 0], raw[:, 1], raw[:, 2]
    logit = (
        1.0 * pos
        + 0.8 * np.sin(3 * pos)
        - 0.8 * neg
        - 0.6 * np.sin(3 * neg)
        + 0.5 * np.sin(2 * free)
        + user_bias[cat[:, 0]]
        - 0.3
    )
    prob = 1 / (1 + np.exp(-logit))
    label = (rng.random(n) < prob).astype(np.float32)
    miss = rng.random(n) < missing_rate
    bucket[miss, 0] = spec.numerical[0].missing_bucket
    dense[miss, 0] = 0.0
    return ModelInputs(cat=cat, dense=dense, bucket=bucket, label=label, group=cat[:, 0].copy(), oracle=prob)


def splits(n_train: int = 6000, n_valid: int = 2000, n_test: int = 2000) -> tuple[FeatureSpec, ModelInputs, ...]:
    spec = wiggle_spec()
    return (
        spec,
        wiggle_inputs(spec, n_train, seed=1),
        wiggle_inputs(spec, n_valid, seed=2),
        wiggle_inputs(spec, n_test, seed=3),
    )
