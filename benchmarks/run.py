"""Run every benchmark, collect the JSON results into one summary and render the README table.

    python benchmarks/run.py [--quick] [--only train,eval,data,engine,e2e] [--render-only]

- train:  benchmarks/train_throughput.py --device cpu (and --device cuda when torch sees a GPU)
- eval:   benchmarks/eval_speed.py (its printed timings are captured)
- data:   benchmarks/data_stages.py --rows 1000000 --rows 10000000 (--quick: 1,000,000 only)
- engine: benchmarks/data_engine.py --rows 10M --rows 30M --rows 100M --spark-rows 10M (validation +
          features + pairs on the data engine; --quick: 10M on DuckDB only; ~45 min on 2 cores)
- e2e:    benchmarks/end_to_end.py (the default ``kedro run``)

Writes benchmarks/results/summary.json (machine information, every result, the aims and whether
they were met) and replaces the block between ``<!-- benchmarks:start -->`` and
``<!-- benchmarks:end -->`` in the project README.md with the Markdown tables (printed as well).
``--render-only`` skips the runs and renders from the JSON files already in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
README = ROOT / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
sys.path.insert(0, str(BENCH))

from machine import load_average, machine_info  # noqa: E402

RATIO_AIM = 1.5
DNN_CPU_AIM = 200_000


def _run(name: str, args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / args[0]), *args[1:]]
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    load = load_average()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = (
            "timeout",
            (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or ""),
            f"timed out after {timeout:.0f} s",
        )
    print(out, end="", flush=True)
    if rc != 0:
        print(f"--- {name} failed ({rc}):\n{(err or '')[-3000:]}", flush=True)
    return {
        "command": " ".join(cmd[1:]),
        "returncode": rc,
        "seconds": time.perf_counter() - t0,
        "load_average_before": load,
        "stdout": out[-4000:],
        "stderr": (err or "")[-2000:] if rc != 0 else None,
    }


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_all(steps: set[str], quick: bool, timeout: float) -> dict[str, Any]:
    import torch

    logs: dict[str, Any] = {}
    if "train" in steps:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            logs[f"train_{device}"] = _run(
                f"training throughput ({device})",
                ["train_throughput.py", "--device", device, "--out", str(RESULTS / f"train_throughput_{device}.json")],
                timeout,
            )
    if "eval" in steps:
        logs["eval_speed"] = _run("evaluation speed", ["eval_speed.py"], timeout)
    if "data" in steps:
        rows = ["--rows", "1000000"] + ([] if quick else ["--rows", "10000000"])
        logs["data_stages"] = _run(
            "data stages", ["data_stages.py", *rows, "--timeout", str(timeout)], 2 * timeout + 60
        )
    if "engine" in steps:
        sizes = ["--rows", "10000000"] + (
            [] if quick else ["--rows", "30000000", "--rows", "100000000", "--spark-rows", "10000000"]
        )
        logs["data_engine"] = _run("data engine", ["data_engine.py", *sizes, "--timeout", str(timeout)], 6 * timeout)
    if "e2e" in steps:
        logs["end_to_end"] = _run("end to end", ["end_to_end.py", "--timeout", str(timeout)], timeout + 60)
    return logs


def _parse_eval(stdout: str | None) -> dict[str, Any] | None:
    if not stdout:
        return None
    out: dict[str, Any] = {}
    m = re.search(r"monotonicity_report: (\d+) rows.*?: ([\d.]+) s total, ([\d.]+) s in the scorer", stdout)
    if m:
        out.update(
            rows=int(m.group(1)), monotonicity_report_seconds=float(m.group(2)), scorer_seconds=float(m.group(3))
        )
    m = re.search(r"accuracy_metrics: ([\d.]+) s", stdout)
    if m:
        out["accuracy_metrics_seconds"] = float(m.group(1))
    return out or None


def collect(logs: dict[str, Any]) -> dict[str, Any]:
    train = {d: r for d in ("cpu", "cuda") if (r := _load(RESULTS / f"train_throughput_{d}.json"))}
    previous = _load(RESULTS / "summary.json") or {}
    eval_speed = _parse_eval(logs.get("eval_speed", {}).get("stdout")) or previous.get("eval_speed")
    summary = {
        "machine": machine_info(),
        "train_throughput": train,
        "eval_speed": eval_speed,
        "data_stages": _load(RESULTS / "data_stages.json"),
        "data_engine": _load(RESULTS / "data_engine.json"),
        "end_to_end": _load(RESULTS / "end_to_end.json"),
        "runs": logs or previous.get("runs", {}),
    }
    summary["aims"] = evaluate_aims(summary)
    return summary


def default_pair_fraction() -> float | None:
    """model_training.contrastive.pair_fraction of conf/base (the project's default), None if unreadable."""
    try:
        import yaml

        data = yaml.safe_load((ROOT / "conf" / "base" / "parameters_model_training.yml").read_text())
        return float(data["model_training"]["contrastive"]["pair_fraction"])
    except (OSError, KeyError, TypeError, ValueError, ImportError):
        return None


def evaluate_aims(s: dict[str, Any]) -> list[dict[str, Any]]:
    aims: list[dict[str, Any]] = []
    default_pf = default_pair_fraction()
    for device, res in s["train_throughput"].items():
        # "ccss" is pair_fraction 1.0, "ccss_pf" the script's --pair-fraction: judge the one equal to the default.
        key = (
            "ccss_pf_over_baseline"
            if default_pf is not None and abs(default_pf - res.get("pair_fraction", -1)) < 1e-9
            else "ccss_over_baseline"
        )
        pf = res.get("pair_fraction") if key == "ccss_pf_over_baseline" else 1.0
        for r in res.get("results", []):
            ratio = r.get(key)
            if ratio is not None:
                aims.append(
                    {
                        "aim": f"CCSS / baseline epoch time <= {RATIO_AIM} at the default pair_fraction {pf} "
                        f"({r['backbone']}, {device})",
                        "value": f"{ratio:.2f}",
                        "met": ratio <= RATIO_AIM,
                    }
                )
            if r.get("backbone") == "dnn" and device == "cpu" and r.get("baseline_samples_per_sec"):
                v = r["baseline_samples_per_sec"]
                cores = res.get("machine", {}).get("cpu_count")
                aims.append(
                    {
                        "aim": f"DNN baseline >= {DNN_CPU_AIM:,} samples/s on 2 CPU cores ({cores} here)",
                        "value": f"{v:,.0f}",
                        "met": v >= DNN_CPU_AIM,
                    }
                )
    ds = s.get("data_stages") or {}
    a = ds.get("aims", {})
    if "memory_ratio" in a:
        worst = max(v for r in a["memory_ratio"]["values"].values() for v in r.values())
        aims.append(
            {
                "aim": "data stages: peak memory increment <= 3x the model-ready tables",
                "value": f"worst {worst:.2f}x",
                "met": a["memory_ratio"]["met"],
            }
        )
    if "linear_growth" in a:
        g = a["linear_growth"]
        value = ", ".join(f"{k.split('_')[0]} {v:.2f}x" for k, v in g.get("per_row_ratio", {}).items()) or g.get(
            "note", ""
        )
        aims.append(
            {
                "aim": "data stages: memory linear in rows (per-row peak increment, largest / smallest size <= 1.3)",
                "value": value,
                "met": g.get("met"),
            }
        )
    if "pairs_faster_than_features" in a:
        vals = a["pairs_faster_than_features"]["values"]
        value = "; ".join(
            f"{int(k):,}: {v['pairs_rows_per_sec']:,.0f} vs {v['features_rows_per_sec']:,.0f} rows/s"
            for k, v in vals.items()
        )
        aims.append(
            {
                "aim": "data stages: pair materialization faster than feature engineering",
                "value": value,
                "met": a["pairs_faster_than_features"]["met"],
            }
        )
    de = (s.get("data_engine") or {}).get("aims", {})
    if "features_rows_per_sec_at_10M" in de:
        a = de["features_rows_per_sec_at_10M"]
        aims.append(
            {
                "aim": f"data engine: feature engineering >= {a['aim']:,} rows/s at 10M rows (DuckDB)",
                "value": f"{a['value']:,.0f}"
                + (
                    f" (writing the stage's outputs alone allows at most {a['ceiling_of_writing_the_outputs']:,.0f})"
                    if a.get("ceiling_of_writing_the_outputs")
                    else ""
                ),
                "met": a["met"],
            }
        )
    if "peak_rss_mib" in de:
        a = de["peak_rss_mib"]
        value = ", ".join(
            [f"{int(k) // 1_000_000}M: {v:,.0f} MiB" for k, v in a["values"].items()]
            + [f"{int(k) // 1_000_000}M: failed" for k in a.get("failed_sizes", [])]
        )
        aims.append(
            {
                "aim": "data engine: peak RSS <= 6 GiB through validation + features + pairs",
                "value": value,
                "met": a["met"],
            }
        )
    return aims


def _floor_line(entry: dict[str, Any]) -> str:
    f = entry["feature_floor"]
    model_ready = sum(v for k, v in f["copy_seconds"].items() if k.startswith("05_model_input"))
    return (
        f"{entry['target_rows']:,} rows: {f['kedro_seconds']:.1f} s Kedro + {f['copy_seconds_total']:.1f} s writing "
        f"7 tables ({model_ready:.1f} s of them the model-ready ones) = {f['floor_seconds']:.1f} s, at most "
        f"{f['rows_per_sec_ceiling']:,.0f} rows/s ({f['share_of_stage']:.0%} of the stage's {entry['feature_engineering']['wall_seconds']:.0f} s)"
    )


def _engine_rows(entry: dict[str, Any], label: str) -> list[str]:
    lines = []
    for key, stage in (
        ("data_validation", "validation + join"),
        ("feature_engineering", "features"),
        ("pairs", "pairs (streamed)"),
    ):
        r = entry.get(key)
        if not r:
            continue
        if r.get("returncode", 0) != 0 or "error" in r:
            reason = r.get("error") or _engine_failure(r.get("log_tail") or "")
            lines.append(
                f"| {entry['target_rows']:,} | {label} | {stage}: **failed** ({reason}) | | "
                f"{r.get('wall_seconds', 0):.0f} | | {r.get('peak_rss_mib', 0):,.0f} |"
            )
            continue
        rows = r.get("rows", entry.get("rows"))
        speed = f"{rows / r['wall_seconds']:,.0f}" if rows else ""
        lines.append(
            f"| {entry['target_rows']:,} | {label} | {stage} | {f'{rows:,}' if rows else ''} | "
            f"{r['wall_seconds']:.0f} | {speed} | {r['peak_rss_mib']:,.0f} |"
        )
    return lines


def _engine_failure(log_tail: str) -> str:
    """The engine's own error line of a failed stage (e.g. DuckDB's out-of-memory message)."""
    for line in reversed(log_tail.splitlines()):
        if "Error" in line and ":" in line:
            return line.strip()[:120]
    return "see the log"


def _fmt(v: Any, spec: str = ",.0f") -> str:
    return "n/a" if v is None else format(v, spec)


def render(s: dict[str, Any]) -> str:
    m = s["machine"]
    lines = [
        f"Measured {m['timestamp']} on {m['cpu_model']}, {m['usable_cores']} cores, {m['ram_gib']} GiB RAM"
        + (f", GPU {m['cuda_device']}" if m.get("cuda_device") else ", no GPU")
        + f"; torch {m.get('torch')}, pandas {m.get('pandas')}; commit {str(m['git']['commit'])[:10]}"
        + (" (dirty)" if m["git"].get("dirty") else "")
        + f"; load average {m['load_average_1_5_15']}.",
        "Reproduce with `python benchmarks/run.py` (raw numbers: `benchmarks/results/summary.json`).",
        "",
    ]
    if s["train_throughput"]:
        pf = next(iter(s["train_throughput"].values())).get("pair_fraction")
        move = next(iter(s["train_throughput"].values())).get("move", "centre")
        lines += [
            f"**Training throughput** (samples/s, fastest epoch; CCSS with the `{move}` move at pair_fraction 1.0, "
            f"`ccss_pf` at {pf}; "
            f"project default {default_pair_fraction()})",
            "",
            "| device | backbone | baseline | CCSS | CCSS / baseline (time) | ccss_pf | ccss_pf / baseline |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for device, res in s["train_throughput"].items():
            for r in res.get("results", []):
                lines.append(
                    f"| {device} | {r.get('backbone')} | {_fmt(r.get('baseline_samples_per_sec'))} | "
                    f"{_fmt(r.get('ccss_samples_per_sec'))} | {_fmt(r.get('ccss_over_baseline'), '.2f')} | "
                    f"{_fmt(r.get('ccss_pf_samples_per_sec'))} | {_fmt(r.get('ccss_pf_over_baseline'), '.2f')} |"
                )
        lines.append("")
    ds = s.get("data_stages")
    if ds:
        lines += [
            "**Data stages** (feature engineering = interactions + log features + split + fit + 3 model inputs; "
            "pairs = stack + draw + table, on the train split; peak RSS per stage process, increment over "
            "the stage's input)",
            "",
            "| target rows | stage | rows | seconds | rows/s | peak RSS MiB | increment MiB | model-ready MiB | increment / model-ready |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for e in ds.get("sizes", []):
            if "error" in e:
                lines.append(f"| {e['target_rows']:,} | {e['error'][:80]} | | | | | | | |")
            for key, label in (("feature_engineering", "features"), ("pair_materialization", "pairs")):
                r = e.get(key)
                if not r:
                    continue
                ready = r.get("model_ready_total_mib", r.get("train_model_ready_mib"))
                lines.append(
                    f"| {e['target_rows']:,} | {label} | {r['rows']:,} | {r['seconds']:.2f} | "
                    f"{r['rows_per_sec']:,.0f} | {r['peak_rss_mib']:,.0f} | {r['peak_increment_mib']:,.0f} | "
                    f"{ready:,.0f} | {r['peak_increment_over_model_ready']:.2f} |"
                )
        lines.append("")
    de = s.get("data_engine")
    if de:
        lines += [
            f"**Data stages on the data engine** (`benchmarks/data_engine.py`: `kedro run` of data_validation "
            f"and feature_engineering on an `EngineSourceDataset` of synthetic parquet, then pairs streamed "
            f"from the train table; DuckDB 2 threads, memory_limit {de.get('memory_limit')}; Spark local[2]; "
            "wall seconds include Kedro's start; peak RSS of each stage's process)",
            "",
            "| target rows | engine | stage | rows | wall s | rows/s | peak RSS MiB |",
            "|---:|---|---|---:|---:|---:|---:|",
        ]
        for e in de.get("sizes", []):
            lines += _engine_rows(e, "duckdb")
        floors = [_floor_line(e) for e in de.get("sizes", []) if "rows_per_sec_ceiling" in e.get("feature_floor", {})]
        spark = de.get("spark")
        if spark:
            lines += _engine_rows(spark, "spark")
            eq = spark.get("equal_to_duckdb") or {}
            if eq:
                parts = [
                    f"{k}: {v.get('rows', 0):,} rows, {v.get('differing_exact_values', '?')} differing "
                    f"ids/buckets/labels, {v.get('unmatched_rows', '?')} unmatched rows, "
                    f"{v.get('dense_values_differing', '?'):,} dense values differ (max "
                    f"{v.get('max_abs_dense_difference', float('nan')):.1e}), "
                    f"{v.get('dense_values_beyond_test_tolerance', '?')} beyond one float32 step"
                    for k, v in eq.items()
                ]
                lines += ["", "Spark's model-ready tables against DuckDB's: " + "; ".join(parts) + "."]
        if floors:
            lines += [
                "",
                "What the feature stage cannot go below on this machine (Kedro's own time in the run, "
                "plus rewriting each table the stage writes with its own parquet writer): " + "; ".join(floors) + ".",
            ]
        if de.get("note"):
            lines += ["", f"Note: {de['note']}."]
        lines.append("")
    e2e = s.get("end_to_end")
    if e2e:
        slow = sorted(e2e.get("nodes", []), key=lambda n: -(n["seconds"] or 0))[:3]
        status = "ok" if e2e.get("returncode") == 0 else f"failed ({e2e.get('returncode')})"
        lines += [
            "**End to end** (`kedro run`, default pipeline, embedded synthetic data)",
            "",
            "| status | wall s | peak RSS MiB | nodes | slowest nodes |",
            "|---|---:|---:|---:|---|",
            f"| {status} | {e2e['wall_seconds']:.1f} | {e2e['peak_rss_mib']:,.0f} | {e2e['nodes_completed']} | "
            + ", ".join(f"{n['node']} {n['seconds']:.1f} s" for n in slow if n["seconds"] is not None)
            + " |",
            "",
        ]
    ev = s.get("eval_speed")
    if ev:
        lines += [
            f"**Evaluation**: monotonicity report on {ev.get('rows', 0):,} rows "
            f"{_fmt(ev.get('monotonicity_report_seconds'), '.2f')} s "
            f"({_fmt(ev.get('scorer_seconds'), '.2f')} s in the scorer); accuracy metrics "
            f"{_fmt(ev.get('accuracy_metrics_seconds'), '.2f')} s.",
            "",
        ]
    if s["aims"]:
        lines += ["**Aims**", "", "| aim | measured | met |", "|---|---|---|"]
        for a in s["aims"]:
            met = {True: "yes", False: "**no**", None: "n/a"}[a["met"]]
            lines.append(f"| {a['aim']} | {a['value']} | {met} |")
    return "\n".join(lines).rstrip() + "\n"


def write_readme(table: str) -> bool:
    text = README.read_text() if README.exists() else ""
    if START not in text or END not in text or text.index(START) > text.index(END):
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}{END}{tail}")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="data stages at 1,000,000 rows only")
    ap.add_argument(
        "--only", default="train,eval,data,engine,e2e", help="comma-separated subset of train,eval,data,engine,e2e"
    )
    ap.add_argument("--render-only", action="store_true", help="no runs: summarize the existing result files")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per benchmark script")
    args = ap.parse_args()
    steps = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = steps - {"train", "eval", "data", "engine", "e2e"}
    if unknown:
        ap.error(f"unknown steps: {sorted(unknown)}")

    logs = {} if args.render_only else run_all(steps, args.quick, args.timeout)
    summary = collect(logs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    table = render(summary)
    print("\n" + table)
    if write_readme(table):
        print(f"README table updated between {START} and {END} in {README}")
    else:
        print(f"README.md has no {START} ... {END} markers: the table above was not written into it")
    print(f"wrote {RESULTS / 'summary.json'}")
    failed = [k for k, v in logs.items() if v["returncode"] != 0]
    if failed:
        print(f"failed: {failed}")
        sys.exit(1)


if __name__ == "__main__":
    main()
