"""Tiny FeatureSpec + ModelInputs fixtures for the evaluation tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

_SRC = Path(__file__).resolve().parents[2] / "src"
if str(_SRC) not in sys.path:  # lets the tests run without an installed package
    sys.path.insert(0, str(_SRC))

from ccss_pipeline.spec import QUANTILE_LEVELS, CategoricalFeature, FeatureSpec, ModelInputs, NumericalFeature  # noqa: E402

N_ROWS = 300


def _numerical(name: str, direction: int, n_buckets: int) -> NumericalFeature:
    """Buckets centred on 1..50 in raw units, standardised so that the centres' dense values are
    -1..1 (as ``encode_numerical`` computes them); the quantile sketch of a uniform training sample
    over the buckets' span (the raw-value grid of :mod:`.raw_grid`)."""
    centres = np.linspace(1.0, 50.0, n_buckets)
    half = (centres[1] - centres[0]) / 2
    sample = np.random.default_rng(len(name)).uniform(centres[0] - half, centres[-1] + half, 20_000)
    return NumericalFeature(
        name=name,
        direction=direction,
        transform="identity",
        mean=float(centres.mean()),
        std=float((centres[-1] - centres[0]) / 2),
        boundaries=list(((centres[1:] + centres[:-1]) / 2).astype(float)),
        centres=list(centres.astype(float)),
        centres_dense=list(np.linspace(-1.0, 1.0, n_buckets).astype(float)),
        quantiles=list(np.quantile(sample, np.linspace(0.0, 1.0, QUANTILE_LEVELS)).astype(float)),
    )


@pytest.fixture
def spec() -> FeatureSpec:
    return FeatureSpec(
        categorical=[CategoricalFeature(name="user", vocab_size=5)],
        numerical=[
            _numerical("up_feat", +1, 8),
            _numerical("down_feat", -1, 8),
            _numerical("free_feat", 0, 4),
        ],
        source="unit-test",
    )


@pytest.fixture
def inputs(spec: FeatureSpec) -> ModelInputs:
    """Rows whose dense value lies within its bucket (centre ± a quarter spacing); some rows of
    ``up_feat`` sit in the missing bucket (dense 0)."""
    rng = np.random.default_rng(42)
    n = N_ROWS
    cols_d, cols_b = [], []
    for f in spec.numerical:
        nb = f.n_buckets
        b = rng.integers(0, nb, size=n)
        cd = np.asarray(f.centres_dense)
        spacing = cd[1] - cd[0]
        d = cd[b] + rng.uniform(-0.25, 0.25, size=n) * spacing
        cols_d.append(d)
        cols_b.append(b)
    dense = np.stack(cols_d, axis=1).astype(np.float32)
    bucket = np.stack(cols_b, axis=1).astype(np.int64)
    missing = rng.random(n) < 0.1
    bucket[missing, 0] = spec.numerical[0].missing_bucket
    dense[missing, 0] = 0.0
    label = (rng.random(n) < 0.3).astype(np.float32)
    return ModelInputs(
        cat=rng.integers(0, 5, size=(n, 1)).astype(np.int64),
        dense=dense,
        bucket=bucket,
        label=label,
        group=rng.integers(0, 20, size=n),
        oracle=rng.uniform(0.05, 0.6, size=n),
    )
