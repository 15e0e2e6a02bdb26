"""Data stages at scale: feature engineering and pair materialization on N synthetic rows.

    python benchmarks/data_stages.py [--rows 1000000] [--rows 10000000] [--out PATH]

For each size, two fresh subprocesses (so peak memory is per stage and per size):

1. ``features``: generate a synthetic bundle scaled to the row count (not timed), then
   build_interactions -> add_log_features -> split_by_time -> fit_feature_spec -> to_model_input
   (3 splits) = "feature engineering" (timed). Intermediates are released after their last use,
   as Kedro releases datasets. The train model input and the spec go to a temp dir.
2. ``pairs``: read the train model input (not timed), then ModelInputs.from_frame + draw_pairs
   (uniform p over the directed features) + PairTable.to_frame = "pair materialization" (timed).

Memory: ru_maxrss of the stage's own process. The peak is reset (``/proc/self/clear_refs`` = 5)
after the untimed setup (imports + input), so the stage's peak is not masked by the generator's;
``peak_increment`` = stage peak - resident set at the start of the stage. ``model_ready_bytes`` is
``DataFrame.memory_usage(deep=True).sum()`` over the three model-input tables.

Aims (issue #7): peak increment per row at the largest size within 1.3x of the smallest
(linear growth); peak increment <= 3x the model-ready tables; pairs faster (rows/s) than features.
Writes benchmarks/results/data_stages.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))  # tests.support: the data stages on frames

from machine import load_average, machine_info  # noqa: E402

MIB = 1024**2
#: E[exp(0.5 * activity)] of the generator's users (activity = degree level + N(0, 0.6)).
_ACTIVITY_FACTOR = 1.1984305555703911
LINEAR_TOLERANCE = 1.3
MEMORY_RATIO_AIM = 3.0


# ----------------------------------------------------------------------------- memory helpers
def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return (kib or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    """User + system CPU time of this process (wall time / CPU time shows contention on a busy machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reset_peak() -> bool:
    """Reset the peak resident set to the current one (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return abs(peak_rss_mib() - current_rss_mib()) < 8


# ----------------------------------------------------------------------------- configuration
def synthetic_config(rows: int, seed: int = 7):
    """A generator configuration whose log has about ``rows`` rows (users = rows/100, videos = rows/70)."""
    from ccss_pipeline.data.synthetic import SyntheticConfig

    n_days = 14
    n_users = max(50, round(rows / 100))
    n_videos = max(50, round(rows / 70))
    per_user_day = rows / (n_users * n_days * _ACTIVITY_FACTOR)
    return SyntheticConfig(
        n_users=n_users, n_videos=n_videos, n_days=n_days, impressions_per_user_day=per_user_day, seed=seed
    )


def project_configs():
    import yaml

    from ccss_pipeline.config import FeatureConfig, SchemaConfig

    base = ROOT / "conf" / "base"
    schema = SchemaConfig(**yaml.safe_load((base / "parameters_schema.yml").read_text())["schema"])
    features = FeatureConfig(
        **yaml.safe_load((base / "parameters_feature_engineering.yml").read_text())["feature_engineering"]
    )
    return schema, features


def frame_bytes(frame) -> int:
    return int(frame.memory_usage(deep=True).sum())


# ----------------------------------------------------------------------------- stages (child processes)
def stage_features(rows: int, workdir: Path) -> dict[str, Any]:
    import pandas as pd  # noqa: F401  (imports are part of the baseline)

    from ccss_pipeline.data.interactions import build_interactions
    from ccss_pipeline.data.sources import synthetic_bundle
    from tests.support.frame_stages import add_log_features, fit_feature_spec, to_model_input
    from tests.support.split_reference import split_by_time

    schema, features = project_configs()
    rss_imports = current_rss_mib()
    cfg = synthetic_config(rows)
    t0 = time.perf_counter()
    bundle = synthetic_bundle(cfg)
    generate_s = time.perf_counter() - t0
    raw_bytes = sum(frame_bytes(f) for f in bundle.values())
    peak_generation = peak_rss_mib()
    rss_input = current_rss_mib()
    reset_ok = reset_peak()

    steps: dict[str, float] = {}
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    interactions = build_interactions(bundle, schema)
    steps["build_interactions"] = time.perf_counter() - t0
    with_logs = add_log_features(interactions, schema.log_features)
    steps["add_log_features"] = time.perf_counter() - t0 - sum(steps.values())
    n_rows = len(with_logs)
    del interactions
    train, valid, test = split_by_time(with_logs, features.split)
    del with_logs
    steps["split_by_time"] = time.perf_counter() - t0 - sum(steps.values())
    spec = fit_feature_spec(train, schema, features)
    steps["fit_feature_spec"] = time.perf_counter() - t0 - sum(steps.values())
    model_inputs = {}
    for name, split in (("train", train), ("validation", valid), ("test", test)):
        model_inputs[name] = to_model_input(split, spec)
    del train, valid, test, split
    steps["to_model_input"] = time.perf_counter() - t0 - sum(steps.values())
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    peak = peak_rss_mib()

    sizes = {name: frame_bytes(f) for name, f in model_inputs.items()}
    model_inputs["train"].to_parquet(workdir / "train_model_input.parquet")
    spec.save(workdir / "feature_spec.json")
    increment = peak - rss_input
    model_ready = sum(sizes.values())
    return {
        "stage": "feature_engineering",
        "target_rows": rows,
        "rows": n_rows,
        "raw_log_rows": int(len(bundle["log"])),
        "generator": {
            "n_users": cfg.n_users,
            "n_videos": cfg.n_videos,
            "n_days": cfg.n_days,
            "impressions_per_user_day": round(cfg.impressions_per_user_day, 4),
            "seed": cfg.seed,
        },
        "generate_seconds": generate_s,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "step_seconds": steps,
        "rows_per_sec": n_rows / seconds,
        "raw_tables_mib": raw_bytes / MIB,
        "rss_after_imports_mib": rss_imports,
        "peak_rss_generation_mib": peak_generation,
        "rss_after_input_mib": rss_input,
        "peak_reset": reset_ok,
        "peak_rss_mib": peak,
        "peak_increment_mib": increment,
        "split_rows": {name: len(f) for name, f in model_inputs.items()},
        "model_ready_mib": {name: b / MIB for name, b in sizes.items()},
        "model_ready_total_mib": model_ready / MIB,
        "peak_increment_over_model_ready": increment * MIB / model_ready,
        "peak_increment_bytes_per_row": increment * MIB / n_rows,
    }


def stage_pairs(workdir: Path, seed: int = 11) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from ccss_pipeline.model.synthesis import directed_probabilities, draw_pairs
    from ccss_pipeline.spec import FeatureSpec, ModelInputs

    rss_imports = current_rss_mib()
    spec = FeatureSpec.load(workdir / "feature_spec.json")
    frame = pd.read_parquet(workdir / "train_model_input.parquet")
    model_ready = frame_bytes(frame)
    rss_input = current_rss_mib()
    reset_ok = reset_peak()

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    train = ModelInputs.from_frame(frame, spec)
    p = directed_probabilities(np.ones(len(spec.numerical)), spec)  # uniform over the drawable directed features
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=seed)
    table = pairs.to_frame()
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    peak = peak_rss_mib()
    increment = peak - rss_input
    return {
        "stage": "pair_materialization",
        "rows": len(frame),
        "pairs": len(table),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows_per_sec": len(frame) / seconds,
        "rss_after_imports_mib": rss_imports,
        "rss_after_input_mib": rss_input,
        "peak_reset": reset_ok,
        "peak_rss_mib": peak,
        "peak_increment_mib": increment,
        "train_model_ready_mib": model_ready / MIB,
        "pair_table_mib": frame_bytes(table) / MIB,
        "peak_increment_over_model_ready": increment * MIB / model_ready,
        "peak_increment_bytes_per_row": increment * MIB / len(frame),
    }


# ----------------------------------------------------------------------------- driver
def _run_child(args: list[str], timeout: float | None) -> tuple[dict[str, Any] | None, str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return None, f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :]), ""
    return None, "no RESULT line in the child's output"


def measure(rows: int, timeout: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"target_rows": rows, "load_average_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="ccss-bench-") as tmp:
        t0 = time.perf_counter()
        feats, err = _run_child(["--stage", "features", "--rows", str(rows), "--workdir", tmp], timeout)
        if feats is None:
            entry["error"] = f"feature engineering: {err}"
            return entry
        entry["feature_engineering"] = feats
        remaining = None if timeout is None else max(1.0, timeout - (time.perf_counter() - t0))
        pairs, err = _run_child(["--stage", "pairs", "--workdir", tmp], remaining)
        if pairs is None:
            entry["error"] = f"pair materialization: {err}"
        else:
            entry["pair_materialization"] = pairs
            entry["pairs_faster_than_features"] = pairs["rows_per_sec"] > feats["rows_per_sec"]
    entry["load_average_after"] = load_average()
    return entry


def aims(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    done = [s for s in sizes if "feature_engineering" in s and "pair_materialization" in s]
    out: dict[str, Any] = {}
    if not done:
        return {"note": "no size completed"}
    ratios = {
        s["target_rows"]: {
            stage: s[stage]["peak_increment_over_model_ready"]
            for stage in ("feature_engineering", "pair_materialization")
        }
        for s in done
    }
    out["memory_ratio"] = {
        "aim": f"peak increment <= {MEMORY_RATIO_AIM}x model-ready tables",
        "values": ratios,
        "met": all(v <= MEMORY_RATIO_AIM for r in ratios.values() for v in r.values()),
    }
    out["pairs_faster_than_features"] = {
        "values": {
            s["target_rows"]: {
                "features_rows_per_sec": s["feature_engineering"]["rows_per_sec"],
                "pairs_rows_per_sec": s["pair_materialization"]["rows_per_sec"],
            }
            for s in done
        },
        "met": all(s["pairs_faster_than_features"] for s in done),
    }
    if len(done) >= 2:
        small, large = min(done, key=lambda s: s["target_rows"]), max(done, key=lambda s: s["target_rows"])
        growth = {
            stage: large[stage]["peak_increment_bytes_per_row"] / small[stage]["peak_increment_bytes_per_row"]
            for stage in ("feature_engineering", "pair_materialization")
        }
        out["linear_growth"] = {
            "aim": f"peak increment per row at {large['target_rows']:,} within {LINEAR_TOLERANCE}x of {small['target_rows']:,}",
            "per_row_ratio": growth,
            "met": all(g <= LINEAR_TOLERANCE for g in growth.values()),
        }
    else:
        out["linear_growth"] = {"met": None, "note": "needs two sizes"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="target row count (repeatable; default 1,000,000)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "data_stages.json"))
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed per size (both stages)")
    ap.add_argument("--stage", choices=["features", "pairs"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.stage:  # child process
        sys.path.insert(0, str(ROOT / "src"))
        workdir = Path(args.workdir)
        result = stage_features(args.rows[0], workdir) if args.stage == "features" else stage_pairs(workdir)
        print("RESULT " + json.dumps(result))
        return

    sizes = []
    for rows in sorted(args.rows or [1_000_000]):
        entry = measure(rows, args.timeout)
        sizes.append(entry)
        _print_entry(entry)
    result = {"benchmark": "data_stages", "machine": machine_info(), "sizes": sizes, "aims": aims(sizes)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["aims"], indent=2))
    print(f"wrote {out}")


def _print_entry(e: dict[str, Any]) -> None:
    if "error" in e:
        print(f"{e['target_rows']:>11,} rows: {e['error']}", flush=True)
    for key in ("feature_engineering", "pair_materialization"):
        s = e.get(key)
        if s:
            print(
                f"{e['target_rows']:>11,} target | {key:22s} {s['rows']:>11,} rows {s['seconds']:7.2f} s "
                f"{s['rows_per_sec']:>10,.0f} rows/s (cpu {s['cpu_seconds']:.1f} s) | peak {s['peak_rss_mib']:8.0f} MiB, "
                f"+{s['peak_increment_mib']:6.0f} MiB = {s['peak_increment_over_model_ready']:.2f}x model-ready",
                flush=True,
            )


if __name__ == "__main__":
    main()
