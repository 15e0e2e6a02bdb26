"""Counterfactual moves compared on the project's own data (spec §3.6; docs/method.md §2 holds the table).

For each move (and the λ = 0 baseline), each backbone and each seed: one fit with the same budget and
the same λ, m; then, on the test split, AUC, the raw-grid wrong-step share (inside a bucket / crossing an
edge), the edge test, the bucket-centre neighbour violation rate, and the mean epoch time. Needs the
model-ready tables of a run (``kedro run --pipelines=feature_engineering,counterfactual_pairs`` first).

    python benchmarks/moves.py [--moves centre straddle edge decomposed within] [--backbones dnn]
                               [--seeds 42 43 44] [--weight 1.0] [--margin 0.02] [--epochs 8]

Writes benchmarks/results/moves.json (every fit) and prints mean ± std per (backbone, move).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig  # noqa: E402
from ccss_pipeline.evaluation.monotonicity import monotonicity_report  # noqa: E402
from ccss_pipeline.evaluation.raw_grid import raw_grid_report  # noqa: E402
from ccss_pipeline.model.scoring import safe_auc, score_fn  # noqa: E402
from ccss_pipeline.model.synthesis import draw_pairs  # noqa: E402
from ccss_pipeline.model.trainer import train_model  # noqa: E402
from ccss_pipeline.spec import FeatureSpec, ModelInputs  # noqa: E402


def load(data: Path) -> tuple[FeatureSpec, ModelInputs, ModelInputs, ModelInputs, np.ndarray]:
    spec = FeatureSpec.load(data / "04_feature" / "feature_spec.json")
    splits = [
        ModelInputs.from_frame(pd.read_parquet(data / "05_model_input" / f"{s}.parquet"), spec)
        for s in ("train", "validation", "test")
    ]
    importance = json.loads((data / "04_feature" / "feature_importance.json").read_text())
    p = np.array([importance["p"][f.name] for f in spec.directed], np.float64)
    return spec, *splits, p


def evaluate(model: torch.nn.Module, spec: FeatureSpec, test: ModelInputs, rows: int, levels: int) -> dict[str, float]:
    scorer = score_fn(model, "cpu")
    grid = raw_grid_report(scorer, test, spec, levels=levels, rows=rows, seed=0)
    mono = monotonicity_report(scorer, test, spec, max_rows=rows, seed=0)
    pooled = grid.pooled
    out = {
        "auc": safe_auc(test.label, scorer(test.cat, test.dense, test.bucket)),
        "wrong_step_share": pooled["wrong_step_share"],
        "wrong_step_share_inside": pooled["wrong_step_share_inside"],
        "wrong_step_share_crossing": pooled["wrong_step_share_crossing"],
        "max_feature_wrong_step_share": pooled["max_feature_wrong_step_share"],
        "edge_wrong_share": pooled["edge_wrong_share"],
        "monotone_row_share": pooled["monotone_row_share"],
        "neighbour_violation_rate": mono.pooled["violation_rate"],
    }
    return {k: float(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--moves", nargs="+", default=["centre", "straddle", "edge", "decomposed", "within"])
    ap.add_argument("--backbones", nargs="+", default=["dnn"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    ap.add_argument("--weight", type=float, default=1.0)
    ap.add_argument("--margin", type=float, default=0.02)
    ap.add_argument("--edge-weight", type=float, default=1.0)
    ap.add_argument("--edge-margin", type=float, default=0.0)
    ap.add_argument("--pair-fraction", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--levels", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "moves.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec, train, valid, test, p = load(args.data)
    records = []
    for backbone_name in args.backbones:
        backbone = BackboneConfig(name=backbone_name)
        for seed in args.seeds:
            optimizer = OptimizerConfig(seed=seed, max_epochs=args.epochs, device="cpu")
            for move in ["baseline", *args.moves]:
                weight = 0.0 if move == "baseline" else args.weight
                contrastive = ContrastiveConfig(
                    weight=weight,
                    margin=args.margin,
                    edge_weight=args.edge_weight,
                    edge_margin=args.edge_margin,
                    pair_fraction=args.pair_fraction,
                )
                pairs = (
                    None
                    if move == "baseline"
                    else draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=11, move=move)
                )
                t0 = time.perf_counter()
                result = train_model(spec, train, valid, backbone, contrastive, optimizer, pairs=pairs)
                wall = time.perf_counter() - t0
                epoch_s = float(np.median([len(train) / h["samples_per_sec"] for h in result.history]))
                rec = {
                    "backbone": backbone_name,
                    "move": move,
                    "seed": seed,
                    "epochs": len(result.history),
                    "best_epoch": result.best_epoch,
                    "epoch_seconds": epoch_s,
                    "fit_seconds": wall,
                    **evaluate(result.model, spec, test, args.rows, args.levels),
                }
                records.append(rec)
                print(json.dumps(rec), flush=True)
    frame = pd.DataFrame(records)
    base = frame[frame.move == "baseline"].set_index(["backbone", "seed"])["epoch_seconds"]
    frame["time_ratio"] = frame.apply(lambda r: r.epoch_seconds / base.loc[(r.backbone, r.seed)], axis=1)
    cols = [
        "auc",
        "wrong_step_share",
        "wrong_step_share_inside",
        "wrong_step_share_crossing",
        "max_feature_wrong_step_share",
        "edge_wrong_share",
        "monotone_row_share",
        "neighbour_violation_rate",
        "time_ratio",
    ]
    summary = frame.groupby(["backbone", "move"], sort=False)[cols].agg(["mean", "std"])
    pd.set_option("display.width", 250)
    print(summary.round(5).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}, "records": records},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
