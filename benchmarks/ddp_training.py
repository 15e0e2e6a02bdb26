"""DistributedDataParallel final fits: 1 process against N gloo processes on this machine (issue 14).

    python benchmarks/ddp_training.py [--nproc 2] [--epochs 2] [--seeds 42 43] [--out PATH]

Needs the project's model-ready tables, spec and importances (run the data stages first, or `dvc pull`).
For each process count and seed, one CCSS fit of the project's `dnn` settings (its λ and margin from
``best_params.json`` when present) on the default train split, validated on the validation split,
launched through :func:`ccss_pipeline.model.distributed.run_fits` exactly as `kedro run` does:

- ``samples_per_sec_total``: the train split over the fastest epoch's training time (all ranks together;
  validation excluded), ``samples_per_sec_per_process`` that divided by the process count;
- ``wall_seconds``: the whole fit, launching the workers included;
- ``best_val_auc``: to check that N processes train the same model as one (the global batch is kept).

On a 2-core machine no speed-up is expected (two processes share two cores); the point is that the
same code runs on a cluster. Writes benchmarks/results/ddp_training.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402


def run(nproc: int, seed: int, epochs: int) -> dict[str, Any]:
    import numpy as np
    import yaml

    from ccss_pipeline.config import DistributedConfig, TrainingConfig
    from ccss_pipeline.model.distributed import Fit, FitData, run_fits
    from ccss_pipeline.model.synthesis import PairTable
    from ccss_pipeline.parquet_table import ParquetTable
    from ccss_pipeline.spec import FeatureSpec, ModelInputs

    data_dir = ROOT / "data"
    spec = FeatureSpec.from_dict(json.loads((data_dir / "04_feature" / "feature_spec.json").read_text()))
    importance = json.loads((data_dir / "04_feature" / "feature_importance.json").read_text())
    p = np.array([importance["p"][f.name] for f in spec.directed], dtype=np.float64)
    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters_model_training.yml").read_text())["model_training"]
    training = TrainingConfig.model_validate(params)
    contrastive = training.contrastive
    best = data_dir / "06_models" / "best_params.json"
    if best.exists():
        chosen = json.loads(best.read_text()).get("dnn", {})
        contrastive = contrastive.model_copy(
            update={k: chosen[k] for k in ("weight", "margin", "temperature") if k in chosen}
        )
    train = ModelInputs.from_frame(ParquetTable(data_dir / "05_model_input" / "train.parquet").frame(), spec)
    valid = ModelInputs.from_frame(ParquetTable(data_dir / "05_model_input" / "validation.parquet").frame(), spec)
    pairs = PairTable.from_frame(ParquetTable(data_dir / "05_model_input" / "counterfactual_pairs.parquet").frame())
    optimizer = training.optimizer.model_copy(
        update={"max_epochs": epochs, "patience": epochs, "seed": seed, "device": "cpu"}
    )
    fit = Fit("ccss", training.backbone.model_copy(update={"name": "dnn"}), contrastive, optimizer, with_pairs=True)
    data = FitData(spec, train, valid, pairs, p, pairs.move, training.streaming.buffer_rows)
    t0 = time.perf_counter()
    result = run_fits([fit], data, DistributedConfig(nproc_per_node=nproc, timeout_s=600))["ccss"]
    wall = time.perf_counter() - t0
    total = max(h["samples_per_sec"] for h in result.history)
    return {
        "nproc": nproc,
        "seed": seed,
        "rows": len(train),
        "epochs": len(result.history),
        "samples_per_sec_total": total,
        "samples_per_sec_per_process": total / nproc,
        "wall_seconds": wall,
        "best_val_auc": result.best_val_auc,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ddp_training.json")
    args = ap.parse_args()
    runs = [run(n, seed, args.epochs) for seed in args.seeds for n in (1, args.nproc)]
    one = [r for r in runs if r["nproc"] == 1]
    many = [r for r in runs if r["nproc"] == args.nproc]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    summary = {
        "total_speedup": mean(many, "samples_per_sec_total") / mean(one, "samples_per_sec_total"),
        "per_process_ratio": mean(many, "samples_per_sec_per_process") / mean(one, "samples_per_sec_per_process"),
        "max_abs_auc_difference": max(
            abs(a["best_val_auc"] - b["best_val_auc"]) for a, b in zip(one, many, strict=True)
        ),
    }
    result = {"machine": machine_info(), "nproc": args.nproc, "epochs": args.epochs, "runs": runs, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
