"""Scoring speed: rows/s of a model in torch (eval, no_grad, float32) and of its ONNX export in onnxruntime.

Sized like the default run: the spec of `data/04_feature/feature_spec.json` when it exists (the default
synthetic data: 5 categorical features incl. user/item with vocabularies of ~2,000/3,000, 11 numerical
features with 16 buckets), else a spec of those sizes; the backbone of `conf/base` (embedding 8, hidden
[128, 64]), randomly initialised (speed does not depend on the weights). Inputs are valid random rows of
the model-ready encoding. Both engines score the same arrays in batches; each (engine, batch size) is
timed `--repeats` times after a warm-up, and the median is reported; the best batch size per engine is
the headline.

    python benchmarks/scoring_speed.py [--rows 200000] [--threads 2] [--batch-sizes 8192,65536]
                                       [--backbones dnn] [--repeats 5] [--spec PATH] [--note TEXT]

Writes benchmarks/results/scoring_speed.json (with the machine, see machine.py) and prints a Markdown table.
Aim (issue 16): >= 500,000 rows/s for the DNN with both engines.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import load_average, machine_info  # noqa: E402

from ccss_pipeline.config import BackboneConfig  # noqa: E402
from ccss_pipeline.model.backbones import CTRModel  # noqa: E402
from ccss_pipeline.serving.onnx_export import INPUT_NAMES, export_onnx, sample_encoding  # noqa: E402
from ccss_pipeline.spec import CategoricalFeature, FeatureSpec, NumericalFeature  # noqa: E402

AIM_ROWS_PER_SEC = 500_000
DEFAULT_SPEC = ROOT / "data" / "04_feature" / "feature_spec.json"
N_BUCKETS = 16


def default_like_spec() -> FeatureSpec:
    """The default synthetic data's feature counts: 5 categorical (user 2,001, item 2,986, 5, 3, 31) and
    11 numerical features with 16 buckets."""
    cats = [
        CategoricalFeature(n, v)
        for n, v in [("user", 2001), ("item", 2986), ("user_active_degree", 5), ("video_type", 3), ("tag", 31)]
    ]
    grid = np.linspace(-2, 2, N_BUCKETS)
    nums = [
        NumericalFeature(
            f"n{i}",
            [1, -1, 0][i % 3],
            "identity",
            0.0,
            1.0,
            ((grid[1:] + grid[:-1]) / 2).tolist(),
            grid.tolist(),
            grid.tolist(),
        )
        for i in range(11)
    ]
    return FeatureSpec(categorical=cats, numerical=nums, source="benchmark")


def load_spec(path: Path | None) -> tuple[FeatureSpec, str]:
    if path is not None and path.is_file():
        return FeatureSpec.load(path), str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return default_like_spec(), "default-like synthetic spec (no feature_spec.json)"


def _median_rows_per_sec(score, rows: int, repeats: int) -> tuple[float, list[float]]:
    score()  # warm-up: allocations, onnxruntime's first-run planning
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        score()
        seconds.append(time.perf_counter() - t0)
    return rows / statistics.median(seconds), seconds


def torch_scorer(model: CTRModel, arrays: dict[str, np.ndarray], batch: int):
    tensors = [torch.from_numpy(arrays[k]) for k in INPUT_NAMES]
    n = tensors[0].shape[0]
    out = torch.empty(n, dtype=torch.float32)

    def score() -> None:
        with torch.no_grad():
            for start in range(0, n, batch):
                logit, _ = model(*(t[start : start + batch] for t in tensors))
                out[start : start + batch] = torch.sigmoid(logit)

    return score


def onnx_scorer(data: bytes, arrays: dict[str, np.ndarray], batch: int, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    n = len(arrays["dense"])
    out = np.empty(n, np.float32)

    def score() -> None:
        for start in range(0, n, batch):
            out[start : start + batch] = session.run(
                ["probability"], {k: v[start : start + batch] for k, v in arrays.items()}
            )[0]

    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=2, help="torch threads and onnxruntime intra-op threads")
    ap.add_argument("--batch-sizes", default="8192,65536")
    ap.add_argument("--backbones", default="dnn")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    ap.add_argument("--note", default="", help="recorded with the result, e.g. 'ran beside another job'")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scoring_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec, spec_from = load_spec(args.spec)
    arrays = sample_encoding(spec, args.rows, seed=0)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    load_before = load_average()
    results = []
    print("| backbone | torch rows/s (batch) | onnxruntime rows/s (batch) | onnxruntime / torch | aim >= 500k both |")
    print("|---|---:|---:|---:|---|")
    for name in args.backbones.split(","):
        torch.manual_seed(0)
        model = CTRModel(spec, BackboneConfig(name=name, embedding_dim=8, hidden_units=[128, 64])).eval()
        buffer = io.BytesIO()
        export_onnx(model, spec, buffer)
        engines: dict[str, dict[str, dict]] = {"torch": {}, "onnxruntime": {}}
        for batch in batches:
            for engine, score in (
                ("torch", torch_scorer(model, arrays, batch)),
                ("onnxruntime", onnx_scorer(buffer.getvalue(), arrays, batch, args.threads)),
            ):
                rps, seconds = _median_rows_per_sec(score, args.rows, args.repeats)
                engines[engine][str(batch)] = {"rows_per_sec": rps, "seconds": seconds}
        best = {e: max(r.items(), key=lambda kv: kv[1]["rows_per_sec"]) for e, r in engines.items()}
        row = {
            "backbone": name,
            "by_batch_size": engines,
            **{f"{e}_rows_per_sec": b[1]["rows_per_sec"] for e, b in best.items()},
            **{f"{e}_best_batch": int(b[0]) for e, b in best.items()},
        }
        row["onnxruntime_over_torch"] = row["onnxruntime_rows_per_sec"] / row["torch_rows_per_sec"]
        row["aim_met"] = min(row["torch_rows_per_sec"], row["onnxruntime_rows_per_sec"]) >= AIM_ROWS_PER_SEC
        results.append(row)
        print(
            f"| {name} | {row['torch_rows_per_sec']:,.0f} ({row['torch_best_batch']}) | "
            f"{row['onnxruntime_rows_per_sec']:,.0f} ({row['onnxruntime_best_batch']}) | "
            f"{row['onnxruntime_over_torch']:.2f} | {'yes' if row['aim_met'] else '**no**'} |",
            flush=True,
        )
    machine = machine_info()
    machine["onnxruntime"] = ort.__version__
    result = {
        "benchmark": "scoring_speed",
        "machine": machine,
        "note": args.note,
        "spec": spec_from,
        "n_categorical": len(spec.categorical),
        "n_numerical": len(spec.numerical),
        "rows": args.rows,
        "threads": args.threads,
        "repeats": args.repeats,
        "statistic": "median over repeats, best batch size",
        "aim_rows_per_sec": AIM_ROWS_PER_SEC,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
