"""Speed check of the evaluation (not a test): monotonicity_report on 100k rows × 8 directed features
× 16 buckets with a small numpy MLP scorer (embeddings + 2 hidden layers, float32).

    python benchmarks/eval_speed.py [--rows 100000] [--chunk-rows 262144]

Prints the seconds of the full report and of the scorer calls alone, so the overhead of the
evaluation itself is visible.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ccss_pipeline.evaluation.accuracy import accuracy_metrics  # noqa: E402
from ccss_pipeline.evaluation.monotonicity import monotonicity_report  # noqa: E402
from ccss_pipeline.spec import CategoricalFeature, FeatureSpec, ModelInputs, NumericalFeature  # noqa: E402

N_CAT, VOCAB, N_NUM, N_DIRECTED, N_BUCKETS, EMB = 4, 1000, 10, 8, 16, 8


def build(n_rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    numerical = []
    for i in range(N_NUM):
        centres = np.sort(rng.exponential(10.0, N_BUCKETS))
        numerical.append(
            NumericalFeature(
                name=f"num_{i}",
                direction=(1 if i % 2 == 0 else -1) if i < N_DIRECTED else 0,
                transform="log1p",
                mean=0.0,
                std=1.0,
                boundaries=list(((centres[1:] + centres[:-1]) / 2).astype(float)),
                centres=list(centres.astype(float)),
                centres_dense=list(np.linspace(-2, 2, N_BUCKETS).astype(float)),
            )
        )
    spec = FeatureSpec(categorical=[CategoricalFeature(f"cat_{j}", VOCAB) for j in range(N_CAT)], numerical=numerical)
    bucket = rng.integers(0, N_BUCKETS + 1, size=(n_rows, N_NUM)).astype(np.int64)
    dense = (np.linspace(-2, 2, N_BUCKETS + 1)[bucket] + rng.normal(0, 0.05, bucket.shape)).astype(np.float32)
    inputs = ModelInputs(
        cat=rng.integers(0, VOCAB, size=(n_rows, N_CAT)).astype(np.int64),
        dense=dense,
        bucket=bucket,
        label=(rng.random(n_rows) < 0.2).astype(np.float32),
        group=rng.integers(0, 10_000, size=n_rows),
    )
    return spec, inputs


class NumpyMLP:
    """Embeddings (categorical + bucket) ‖ dense → 64 → 32 → 1, ReLU, sigmoid; float32."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.cat_emb = rng.normal(0, 0.1, (N_CAT, VOCAB, EMB)).astype(np.float32)
        self.bkt_emb = rng.normal(0, 0.1, (N_NUM, N_BUCKETS + 1, EMB)).astype(np.float32)
        d_in = N_CAT * EMB + N_NUM * EMB + N_NUM
        self.w1 = rng.normal(0, d_in**-0.5, (d_in, 64)).astype(np.float32)
        self.w2 = rng.normal(0, 64**-0.5, (64, 32)).astype(np.float32)
        self.w3 = rng.normal(0, 32**-0.5, (32, 1)).astype(np.float32)
        self.calls = 0
        self.rows = 0
        self.seconds = 0.0

    def __call__(self, cat, dense, bucket):
        t0 = time.perf_counter()
        x = np.concatenate(
            [self.cat_emb[j][cat[:, j]] for j in range(N_CAT)]
            + [self.bkt_emb[k][bucket[:, k]] for k in range(N_NUM)]
            + [dense],
            axis=1,
        )
        h = np.maximum(x @ self.w1, 0)
        h = np.maximum(h @ self.w2, 0)
        p = 1.0 / (1.0 + np.exp(-(h @ self.w3)[:, 0]))
        self.calls += 1
        self.rows += len(dense)
        self.seconds += time.perf_counter() - t0
        return p


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=262_144)
    args = parser.parse_args()
    spec, inputs = build(args.rows)
    model = NumpyMLP()
    t0 = time.perf_counter()
    res = monotonicity_report(model, inputs, spec, chunk_rows=args.chunk_rows)
    total = time.perf_counter() - t0
    print(
        f"monotonicity_report: {args.rows} rows x {len(spec.directed)} directed x {N_BUCKETS} buckets: "
        f"{total:.2f} s total, {model.seconds:.2f} s in the scorer ({model.rows:,} rows, {model.calls} calls), "
        f"overhead {total - model.seconds:.2f} s"
    )
    print(f"pooled violation rate {res.pooled['violation_rate']:.4f}")
    prob = model(inputs.cat, inputs.dense, inputs.bucket)
    t0 = time.perf_counter()
    accuracy_metrics(inputs.label, prob, inputs.group)
    print(f"accuracy_metrics: {time.perf_counter() - t0:.2f} s ({inputs.group.max() + 1} users)")


if __name__ == "__main__":
    main()
