"""Training streamed from parquet against training in memory: samples/s and peak memory (issue 14).

    python benchmarks/stream_training.py [--rows 30000000] [--memory-rows 2000000] [--epochs 1] [--out PATH]

Needs the project's model-ready tables and spec (run the data stages first, or `dvc pull`):
data/05_model_input/{train,validation}.parquet, data/04_feature/{feature_spec,feature_importance}.json.

1. A model-ready table of ``--rows`` rows is written to a temporary parquet file by resampling the
   train table's rows (seeded, 1M rows at a time; row groups of 256k rows): the real schema and value
   distribution at any size (untimed).
2. ``memory``: a child process loads the first ``--memory-rows`` rows into memory and trains CCSS (the
   project's `dnn` settings, pairs drawn for the whole table up front) for ``--epochs`` epochs.
3. ``streamed_same_rows``: the same rows, streamed (the throughput ratio compares 2 and 3: same rows,
   same work; also their validation AUC).
4. ``streamed``: the same model on the whole ``--rows`` table streamed row group by row group through
   the shuffle buffer (pairs drawn per batch): the memory aim. (Its AUC is not comparable: the table
   repeats each of the train table's rows ``--rows`` / 140k times, so one epoch overfits them.)

Both validate on the first 50k validation rows. Reported: training samples/s of the fastest epoch
(the trainer's own count: the validation pass is excluded) and each child's peak RSS (``os.wait4``).
Aims: streamed peak RSS <= 4 GiB at 30M rows; streamed samples/s >= 80% of the in-memory path.
Writes benchmarks/results/stream_training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

RSS_AIM_MIB = 4096
RATIO_AIM = 0.8
VALID_ROWS = 50_000


def write_table(rows: int, out: Path, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.read_table(ROOT / "data" / "05_model_input" / "train.parquet")
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(out, source.schema) as writer:
        for start in range(0, rows, 1_000_000):
            take = rng.integers(0, source.num_rows, min(1_000_000, rows - start))
            writer.write_table(source.take(pa.array(take)), row_group_size=262_144)


def child(mode: str, table: Path, memory_rows: int, epochs: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    import yaml

    from ccss_pipeline.config import TrainingConfig
    from ccss_pipeline.model.streaming import ParquetModelInput
    from ccss_pipeline.model.synthesis import draw_pairs
    from ccss_pipeline.model.trainer import train_model
    from ccss_pipeline.parquet_table import ParquetTable
    from ccss_pipeline.spec import FeatureSpec, ModelInputs

    spec = FeatureSpec.from_dict(json.loads((ROOT / "data" / "04_feature" / "feature_spec.json").read_text()))
    importance = json.loads((ROOT / "data" / "04_feature" / "feature_importance.json").read_text())
    p = np.array([importance["p"][f.name] for f in spec.directed], dtype=np.float64)
    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters_model_training.yml").read_text())["model_training"]
    training = TrainingConfig.model_validate(params)
    backbone = training.backbone.model_copy(update={"name": "dnn"})
    optim = training.optimizer.model_copy(update={"max_epochs": epochs, "patience": epochs, "device": "cpu"})
    valid_frame = pq.read_table(ROOT / "data" / "05_model_input" / "validation.parquet").slice(0, VALID_ROWS)
    valid = ModelInputs.from_frame(valid_frame.to_pandas(), spec)
    t0 = time.perf_counter()
    if mode == "memory":  # (streamed_same_rows: the streamed path on the in-memory run's rows)
        file = pq.ParquetFile(table)
        groups, n = [], 0
        while n < memory_rows and len(groups) < file.num_row_groups:  # only the row groups needed
            n += file.metadata.row_group(len(groups)).num_rows
            groups.append(len(groups))
        frame: pd.DataFrame = file.read_row_groups(groups).slice(0, memory_rows).to_pandas()
        train = ModelInputs.from_frame(frame, spec)
        del frame
        pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=0, move="decomposed")
        result = train_model(spec, train, valid, backbone, training.contrastive, optim, pairs=pairs)
    else:
        train = ParquetModelInput(ParquetTable(table), spec)
        result = train_model(spec, train, valid, backbone, training.contrastive, optim, shapley_p=p, move="decomposed")
    return {
        "mode": mode,
        "rows": len(train),
        "epochs": len(result.history),
        "samples_per_sec": max(h["samples_per_sec"] for h in result.history),
        "val_auc": result.best_val_auc,
        "seconds": time.perf_counter() - t0,
    }


def run_child(args: list[str]) -> dict[str, Any]:
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    out, err = proc.communicate()
    result = next((json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")), None)
    if result is None:
        return {"error": err[-2000:]}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=30_000_000)
    ap.add_argument("--memory-rows", type=int, default=2_000_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream_training.json")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "TABLE", "MEMORY_ROWS", "EPOCHS"))
    args = ap.parse_args()
    if args.child:
        import resource

        result = child(args.child[0], Path(args.child[1]), int(args.child[2]), int(args.child[3]))
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="ccss-stream-") as tmp:
        table, same = Path(tmp) / "train.parquet", Path(tmp) / "train_memory_rows.parquet"
        t0 = time.perf_counter()
        write_table(args.rows, table)
        written = time.perf_counter() - t0
        write_table(args.memory_rows, same)  # the same seeded draw: the first --memory-rows rows of the table
        runs = {
            mode: run_child(["--child", mode, str(path), str(args.memory_rows), str(args.epochs)])
            for mode, path in (("memory", table), ("streamed_same_rows", same), ("streamed", table))
        }
    result: dict[str, Any] = {
        "machine": machine_info(),
        "rows": args.rows,
        "memory_rows": args.memory_rows,
        "write_seconds": written,
        **runs,
    }
    mem, same, streamed = runs["memory"], runs["streamed_same_rows"], runs["streamed"]
    if not any("error" in r for r in runs.values()):
        ratio = same["samples_per_sec"] / mem["samples_per_sec"]  # the same rows, so the same work
        result["aims"] = {
            "streamed_peak_rss_mib": {
                "value": streamed["peak_rss_mib"],
                "aim": RSS_AIM_MIB,
                "met": streamed["peak_rss_mib"] <= RSS_AIM_MIB,
                "rows": args.rows,
            },
            "throughput_ratio": {"value": ratio, "aim": RATIO_AIM, "met": ratio >= RATIO_AIM},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
