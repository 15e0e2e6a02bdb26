"""Sparse integer counts: wrong integer steps with the paper's anchor (the row's own value) and with
stratified anchors (``counterfactual_pairs.anchor_share``), on a seeded table a practitioner might bring.

The table (``tests/support/sparse_counts.py``): time-ordered impressions with two directed counts —
``rare_count`` (97% zeros, 0…20) and ``visits`` (0…12) — and a continuous ``price`` (−1). The true logit
rises with every count step. Split by time 70/15/15, spec fitted on train (counts: every observed value
is a grid level), one DNN fit per variant and seed with the same budget and λ; the test split's raw
grid over every observed value of each count (``evaluation.raw_grid``) gives the per-feature
wrong-step share and the edge test, beside AUC and LogLoss. Draw probabilities are uniform over the
directed features (no Shapley warm-up: the point is which steps the pairs reach).

    python benchmarks/discrete_counts.py [--rows 6000] [--shares 0 0.5 1] [--seeds 42 43 44]

Writes benchmarks/results/discrete_counts.json and prints mean ± std per variant and feature.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from machine import machine_info  # noqa: E402

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig  # noqa: E402
from ccss_pipeline.evaluation.raw_grid import raw_grid_report  # noqa: E402
from ccss_pipeline.model.moves import move_name  # noqa: E402
from ccss_pipeline.model.scoring import safe_auc, score_fn  # noqa: E402
from ccss_pipeline.model.synthesis import draw_pairs  # noqa: E402
from ccss_pipeline.model.trainer import train_model  # noqa: E402
from ccss_pipeline.spec import FeatureSpec, ModelInputs  # noqa: E402
from tests.support.frame_stages import fit_feature_spec, to_model_input  # noqa: E402
from tests.support.sparse_counts import SPARSE_CFG, SPARSE_SCHEMA, as_split, sparse_count_table  # noqa: E402


def splits(rows: int, seed: int) -> tuple[FeatureSpec, ModelInputs, ModelInputs, ModelInputs]:
    table = as_split(sparse_count_table(n=rows, seed=seed))  # already in time order
    cut = [int(rows * 0.70), int(rows * 0.85)]
    parts = [table.iloc[: cut[0]], table.iloc[cut[0] : cut[1]], table.iloc[cut[1] :]]
    spec = fit_feature_spec(parts[0], SPARSE_SCHEMA, SPARSE_CFG)
    train, valid, test = (ModelInputs.from_frame(to_model_input(p, spec), spec) for p in parts)
    return spec, train, valid, test


def measure(model: torch.nn.Module, spec: FeatureSpec, test: ModelInputs) -> dict[str, float]:
    scorer = score_fn(model, "cpu")
    prob = scorer(test.cat, test.dense, test.bucket)
    grid = raw_grid_report(scorer, test, spec, levels=200, rows=len(test), seed=0)
    out = {
        "auc": safe_auc(test.label, prob),
        "logloss": float(log_loss(test.label, np.clip(prob, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "wrong_step_share": grid.pooled["wrong_step_share"],
        "edge_wrong_share": grid.pooled["edge_wrong_share"],
        "monotone_row_share": grid.pooled["monotone_row_share"],
    }
    for r in grid.per_feature.to_dict("records"):
        out[f"{r['feature']}/wrong_step_share"] = r["wrong_step_share"]
        out[f"{r['feature']}/edge_wrong_share"] = r["edge_wrong_share"]
    return {k: float(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--shares", nargs="+", type=float, default=[0.0, 0.5, 1.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    ap.add_argument("--backbone", default="dnn")
    ap.add_argument("--weight", type=float, default=3.0)
    ap.add_argument("--margin", type=float, default=0.02)
    ap.add_argument("--edge-weight", type=float, default=2.0)
    ap.add_argument("--pair-fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "discrete_counts.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec, train, valid, test = splits(args.rows, args.data_seed)
    p = np.full(len(spec.directed), 1.0 / len(spec.directed))
    records = []
    for seed in args.seeds:
        optimizer = OptimizerConfig(seed=seed, max_epochs=args.epochs, patience=3, batch_size=256, device="cpu")
        for variant in ["baseline", *[f"anchor_share={s:g}" for s in args.shares]]:
            share = 0.0 if variant == "baseline" else float(variant.split("=")[1])
            contrastive = ContrastiveConfig(
                weight=0.0 if variant == "baseline" else args.weight,
                margin=args.margin,
                edge_weight=args.edge_weight,
                pair_fraction=args.pair_fraction,
            )
            move = move_name("decomposed", share)
            pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=11, move=move)
            t0 = time.perf_counter()
            fit = train_model(
                spec, train, valid, BackboneConfig(name=args.backbone), contrastive, optimizer, pairs=pairs
            )
            record = {"variant": variant, "seed": seed, "move": move, "best_epoch": fit.best_epoch,
                      "fit_seconds": time.perf_counter() - t0, **measure(fit.model, spec, test)}  # fmt: skip
            records.append(record)
            print(json.dumps(record), flush=True)
    frame = pd.DataFrame(records)
    metrics = [c for c in frame.columns if c not in ("variant", "seed", "move")]
    summary = frame.groupby("variant", sort=False)[metrics].agg(["mean", "std"])
    pd.set_option("display.width", 250)
    print(summary.T.round(4).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": machine_info(),
                "args": {k: str(v) for k, v in vars(args).items()},
                "grid": {f.name: ("observed values" if f.is_discrete else "quantiles") for f in spec.directed},
                "records": records,
            },  # fmt: skip
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
