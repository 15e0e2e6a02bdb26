"""Why edges fail: the edge test per boundary of every trained model of a run, beside the training rows on
each side of the boundary and whether the failing rows carry out-of-vocabulary ids.

Reads a finished run's data folder (``kedro run`` first; for KuaiRand ``kedro run --env kuairand``): the
feature spec, the test split and ``data/06_models/trained``. For every directed feature and inner
boundary it prints the CCSS models' edge-test wrong share (mean over seeds) next to the baselines', the
training rows of the buckets below and at the boundary, and, among the test rows that go the wrong way
there, the share whose user or item id is out of vocabulary (index 0) against that share in all rows.

    python benchmarks/edge_diagnosis.py [--data data] [--rows 2000] [--out benchmarks/results/edge_diagnosis.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

from ccss_pipeline.datasets.models import ModelCollectionDataset  # noqa: E402
from ccss_pipeline.encoding import encode_numerical  # noqa: E402
from ccss_pipeline.evaluation.raw_grid import edge_values, raw_grid_report, sweep_matrix  # noqa: E402
from ccss_pipeline.model.scoring import score_fn  # noqa: E402
from ccss_pipeline.spec import FeatureSpec, ModelInputs  # noqa: E402


def oov_columns(spec: FeatureSpec) -> list[int]:
    """Positions of the user and item id columns among the categorical inputs (they come first)."""
    names = [c.name for c in spec.categorical]
    return [i for i, n in enumerate(names) if n in ("user", "item")]


def wrong_rows_oov(scorer, sample: ModelInputs, spec: FeatureSpec, k: int, eps: float) -> list[dict]:
    """Per boundary of feature k: how many sampled rows go the wrong way and how many of those have an
    out-of-vocabulary user or item id."""
    f = spec.numerical[k]
    d = int(np.sign(f.direction))
    below, at = edge_values(f)
    e_dense, e_bucket = encode_numerical(np.column_stack([below, at]).reshape(-1), f)
    ice = sweep_matrix(scorer, sample.cat, sample.dense, sample.bucket, k, e_dense, e_bucket)
    wrong = d * (ice[:, 1::2] - ice[:, 0::2]) < -eps
    cols = oov_columns(spec)
    oov = (sample.cat[:, cols] == 0).any(axis=1) if cols else np.zeros(len(sample), bool)
    return [
        {"at": float(at[j]), "wrong_rows": int(wrong[:, j].sum()), "wrong_rows_oov": int((wrong[:, j] & oov).sum())}
        for j in range(wrong.shape[1])
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument(
        "--as-continuous",
        action="store_true",
        help="measure every feature as continuous (quantile grid, nextafter edge test), as before discrete "
        "features had their own grid: the same models, the old measurement",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "edge_diagnosis.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    spec = FeatureSpec.load(args.data / "04_feature" / "feature_spec.json")
    fitted = spec
    if args.as_continuous:  # same weights and buckets; only where the grid and the edge test look changes
        spec = replace(spec, numerical=[replace(f, support=[]) for f in spec.numerical])
    test = ModelInputs.from_frame(pd.read_parquet(args.data / "05_model_input" / "test.parquet"), spec)
    models = ModelCollectionDataset(path=str(args.data / "06_models" / "trained")).load()
    idx = np.sort(np.random.default_rng(0).choice(len(test), size=min(args.rows, len(test)), replace=False))
    sample = test.take(idx)
    cols = oov_columns(spec)
    oov_share = float((sample.cat[:, cols] == 0).any(axis=1).mean()) if cols else 0.0
    frames = []
    for name, trained in sorted(models.items()):
        scorer = score_fn(trained.rebuild(fitted), "cpu")
        grid = raw_grid_report(scorer, test, spec, rows=args.rows, seed=0, eps=args.eps)
        edges = grid.per_edge.assign(model=name, backbone=trained.backbone_name, variant=trained.variant)
        oov = pd.concat(
            [pd.DataFrame(wrong_rows_oov(scorer, sample, spec, k, args.eps)).assign(feature=spec.numerical[k].name)
             for k in spec.directed_indices()],
            ignore_index=True,
        )  # fmt: skip
        frames.append(edges.merge(oov, on=["feature", "at"], how="left"))
    table = pd.concat(frames, ignore_index=True)
    keys = ["backbone", "variant", "feature", "boundary", "below", "at", "train_rows_below", "train_rows_at"]
    summary = (
        table.groupby(keys, sort=False)
        .agg(
            edge_wrong_share=("edge_wrong_share", "mean"),
            wrong_rows=("wrong_rows", "sum"),
            wrong_rows_oov=("wrong_rows_oov", "sum"),
            seeds=("model", "nunique"),
        )  # fmt: skip
        .reset_index()
    )
    summary["oov_share_of_wrong"] = summary["wrong_rows_oov"] / summary["wrong_rows"].where(summary["wrong_rows"] > 0)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    ccss = summary[summary["variant"] == "ccss"].sort_values("edge_wrong_share", ascending=False)
    print(f"test rows sampled: {len(sample)}; with an out-of-vocabulary user or item id: {oov_share:.1%}")
    print("CCSS edges by wrong share (mean over seeds):")
    print(ccss.head(30).round(4).to_string(index=False))
    per_feature = summary.groupby(["backbone", "variant", "feature"], sort=False)["edge_wrong_share"].mean()
    print(per_feature.round(4).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine_info(), "data": str(args.data), "oov_share": oov_share,
                                    "edges": summary.to_dict("records")}, indent=2, default=float))  # fmt: skip


if __name__ == "__main__":
    main()
