"""Training throughput: baseline (λ = 0) versus CCSS epoch time per backbone on synthetic ModelInputs.

Sized like the project's default: 6 categorical features (user/item ids with vocabularies 3000/2000),
10 numerical features with 16 buckets, embedding 8, hidden [128, 64], batch 1024.

    python benchmarks/train_throughput.py --device cpu [--rows 200000] [--epochs 2] [--threads N]
                                          [--move decomposed] [--pair-fraction 0.3]

CCSS is measured with the project's default counterfactual move (``decomposed``: six extra points per
pair) at pair_fraction 1.0 ("ccss") and at ``--pair-fraction`` ("ccss_pf", the project default 0.3).

Writes benchmarks/results/train_throughput_<device>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig  # noqa: E402
from ccss_pipeline.model.synthesis import directed_probabilities, draw_pairs  # noqa: E402
from ccss_pipeline.model.trainer import train_model  # noqa: E402
from ccss_pipeline.spec import CategoricalFeature, FeatureSpec, ModelInputs, NumericalFeature  # noqa: E402

N_BUCKETS = 16


def make_spec() -> FeatureSpec:
    cats = [CategoricalFeature("user_id", 3000), CategoricalFeature("item_id", 2000)] + [
        CategoricalFeature(f"c{i}", v) for i, v in enumerate([50, 20, 10, 5])
    ]
    grid = np.linspace(-2, 2, N_BUCKETS)
    nums = [
        NumericalFeature(
            f"n{i}",
            [1, -1, 0][i % 3],
            "identity",
            0.0,
            1.0,
            list(((grid[1:] + grid[:-1]) / 2).tolist()),
            grid.tolist(),
            grid.tolist(),
        )
        for i in range(10)
    ]
    return FeatureSpec(categorical=cats, numerical=nums)


def make_inputs(spec: FeatureSpec, n: int, seed: int) -> ModelInputs:
    rng = np.random.default_rng(seed)
    bucket = rng.integers(0, N_BUCKETS, (n, len(spec.numerical)))
    dense = (np.asarray(spec.numerical[0].centres_dense)[bucket] + rng.normal(0, 0.1, bucket.shape)).astype(np.float32)
    cat = np.stack([rng.integers(0, c.vocab_size, n) for c in spec.categorical], 1)
    logit = dense[:, 0] - dense[:, 1] + 0.3 * np.sin(cat[:, 0])
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return ModelInputs(cat=cat, dense=dense, bucket=bucket, label=label, group=cat[:, 0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run; the fastest epoch is reported")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--backbones", default="dnn,wide_deep,deepfm,dcn_v2")
    ap.add_argument("--pair-fraction", type=float, default=0.3, help="pair_fraction of the extra 'ccss_pf' variant")
    ap.add_argument("--move", default="decomposed", help="counterfactual move (model/moves.py)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = make_spec()
    train, valid = make_inputs(spec, args.rows, 0), make_inputs(spec, 10_000, 1)
    p = directed_probabilities(np.ones(len(spec.numerical)), spec)
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=0, move=args.move)
    optim = OptimizerConfig(batch_size=1024, max_epochs=args.epochs, patience=args.epochs, device=args.device, seed=0)
    variants = {
        "baseline": ContrastiveConfig(weight=0.0),
        "ccss": ContrastiveConfig(weight=1.0),  # the default: pair_fraction = 1.0
        "ccss_pf": ContrastiveConfig(weight=1.0, pair_fraction=args.pair_fraction),
    }
    rows = []
    for name in args.backbones.split(","):
        bb = BackboneConfig(name=name, embedding_dim=8, hidden_units=[128, 64])
        result = {}
        for variant, ccfg in variants.items():
            res = train_model(spec, train, valid, bb, ccfg, optim, pairs if ccfg.weight > 0 else None)
            best = max(res.history, key=lambda h: h["samples_per_sec"])
            result[variant] = {
                "epoch_seconds": args.rows / best["samples_per_sec"],
                "samples_per_sec": best["samples_per_sec"],
            }
        base_s = result["baseline"]["epoch_seconds"]
        ratio = result["ccss"]["epoch_seconds"] / base_s
        ratio_pf = result["ccss_pf"]["epoch_seconds"] / base_s
        rows.append(
            {
                "backbone": name,
                **{f"{v}_{k}": x for v, d in result.items() for k, x in d.items()},
                "ccss_over_baseline": ratio,
                "ccss_pf_over_baseline": ratio_pf,
            }
        )
        print(
            f"{name:10s} | "
            + " | ".join(f"{v} {d['epoch_seconds']:5.2f}s {d['samples_per_sec']:8.0f}/s" for v, d in result.items())
            + f" | ccss/base {ratio:4.2f} | ccss_pf/base {ratio_pf:4.2f}",
            flush=True,
        )

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else None,
    }
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"train_throughput_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "rows": args.rows,
                "batch_size": 1024,
                "move": args.move,
                "pair_fraction": args.pair_fraction,
                "results": rows,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
