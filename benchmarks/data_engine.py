"""The data stages on the data engine at scale: validation + feature engineering + pairs, 10M-100M rows.

    python benchmarks/data_engine.py --rows 10000000 --rows 30000000 --rows 100000000 \\
        [--spark-rows 10000000] [--memory-limit 3GB] [--timeout 3600] [--workdir DIR] [--out PATH]

For each size (fresh child processes, so every peak resident set belongs to one stage and one size):

1. ``generate`` (not a stage): the synthetic model written chunk by chunk to parquet
   (:func:`ccss_pipeline.data.synthetic.write_parquet`; users = rows/100, videos = rows/70, 14 days).
2. ``validation``: ``kedro run --pipeline data_validation --env bench`` in a throw-away copy of the
   project whose ``raw_source`` is an ``EngineSourceDataset`` over those files: the raw gate (GX a batch
   at a time + engine aggregates) and the join into ``interactions.parquet``.
3. ``features``: ``kedro run --pipeline feature_engineering --env bench``: log features, time split,
   split gate, the transformer's fit and the three model-ready tables, all on the engine.
4. ``pairs``: the training table streamed row group by row group from parquet through
   :func:`ccss_pipeline.model.pair_stream.pair_chunks` (uniform draw probabilities) into parquet.

Peak RSS: ``os.wait4`` of each child (its own maximum resident set, DuckDB's memory included).
DuckDB runs with ``--memory-limit`` (it spills past it to a temporary folder in the work directory)
and 2 threads. ``--spark-rows N``: the same size is also run with ``--env``'s engine set to PySpark
``local[2]`` on the same raw files, and its model-ready tables are compared with DuckDB's (ids and
buckets exactly, dense values to float32 rounding).

``--workdir DIR`` keeps each size's generated parquet (``DIR/rows_N/raw``, marked ``_GENERATED`` when
complete) and the next run reuses it. The results file keeps the sizes not run now from its earlier
contents (each entry records the ``machine`` it was measured on), and the Spark run unless it is redone.

Aims (issue #13): features >= 1,000,000 rows/s at 10M rows on DuckDB; peak RSS <= 6 GB at every size
and flat in the row count. Writes benchmarks/results/data_engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from end_to_end import make_project, run_kedro  # noqa: E402
from machine import load_average, machine_info  # noqa: E402

MIB = 1024**2
RSS_AIM_MIB = 6 * 1024
FEATURES_AIM = 1_000_000
_ACTIVITY_FACTOR = 1.1984305555703911  # E[exp(0.5 * activity)] of the generator's users


def synthetic_config(rows: int, seed: int = 7):
    """A generator configuration whose log has about ``rows`` rows."""
    from ccss_pipeline.data.synthetic import SyntheticConfig

    n_users, n_videos, n_days = max(50, round(rows / 100)), max(50, round(rows / 70)), 14
    return SyntheticConfig(
        n_users=n_users,
        n_videos=n_videos,
        n_days=n_days,
        impressions_per_user_day=rows / (n_users * n_days * _ACTIVITY_FACTOR),
        seed=seed,
    )


# ----------------------------------------------------------------------------- children
def child_generate(rows: int, folder: Path) -> dict[str, Any]:
    from ccss_pipeline.data.synthetic import write_parquet

    t0 = time.perf_counter()
    write_parquet(synthetic_config(rows), folder, chunk_rows=2_000_000)
    return {"seconds": time.perf_counter() - t0}


def child_pairs(model_input: Path, spec_path: Path, out: Path, chunk_rows: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    from ccss_pipeline.datasets import ParquetChunksDataset
    from ccss_pipeline.model.pair_stream import pair_chunks
    from ccss_pipeline.spec import FeatureSpec

    spec = FeatureSpec.load(spec_path)
    files = sorted(model_input.glob("*.parquet")) if model_input.is_dir() else [model_input]
    counted = {"rows": 0, "pairs": 0}

    def batches():
        for file in files:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=262_144):
                frame = batch.to_pandas()
                counted["rows"] += len(frame)
                yield frame

    def chunks():
        for frame in pair_chunks(
            batches(), spec, np.ones(len(spec.directed)), seed=11, move="decomposed", chunk_rows=chunk_rows
        ):
            counted["pairs"] += len(frame)
            yield frame

    t0 = time.perf_counter()
    ParquetChunksDataset(str(out)).save(chunks())
    return {"seconds": time.perf_counter() - t0, **counted}


def child_compare(a: Path, b: Path) -> dict[str, Any]:
    """Two engines' model-ready tables matched by position (both are written in ``row`` order; a Spark
    folder's part files in name order): exact on ids/buckets/labels, float32 steps on dense values."""
    import duckdb

    def scan(path: Path) -> str:
        target = path / "*.parquet" if path.is_dir() else path
        return (
            f"(SELECT *, row_number() OVER (ORDER BY filename, file_row_number) AS __pos "
            f"FROM read_parquet('{target}', filename = true, file_row_number = true))"
        )

    con = duckdb.connect()
    cols = [
        r[0]
        for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet('{a / '*.parquet' if a.is_dir() else a}')").fetchall()
    ]
    dense = [c for c in cols if c.startswith("num__")]  # NumericalFeature.dense_column
    exact = [c for c in cols if c not in dense]
    mismatch = " + ".join(f"(a.{c} IS DISTINCT FROM b.{c})::INT" for c in exact) or "0"
    gap = ", ".join(f"max(abs(a.{c} - b.{c}))" for c in dense) or "0"
    # one float32 step at |x|: 2^-23 * 2^floor(log2|x|); allow what the equality tests allow (2^-22 relative + 1e-7)
    outside = " + ".join(f"(abs(a.{c} - b.{c}) > 2.384185791015625e-07 * abs(a.{c}) + 1e-7)::INT" for c in dense) or "0"
    changed = " + ".join(f"(a.{c} != b.{c})::INT" for c in dense) or "0"
    q = (
        f"SELECT count(*), sum(CASE WHEN b.__pos IS NULL OR a.__pos IS NULL THEN 1 ELSE 0 END), "
        f"sum({mismatch}), greatest({gap}), sum({changed}), sum({outside}) "
        f"FROM {scan(a)} a FULL JOIN {scan(b)} b USING (__pos)"
    )
    n, unmatched, differing, max_gap, changed_n, outside_n = con.sql(q).fetchone()
    return {
        "rows": int(n),
        "unmatched_rows": int(unmatched or 0),
        "differing_exact_values": int(differing or 0),
        "max_abs_dense_difference": float(max_gap or 0.0),
        "dense_values_differing": int(changed_n or 0),
        "dense_values_beyond_test_tolerance": int(outside_n or 0),
        "exact_columns": len(exact),
        "dense_columns": len(dense),
    }


#: what the feature-engineering stage writes (``data/`` relative): a table of the log features, the three
#: splits and the three model-ready tables, each holding (about) every row once or its share of them
FEATURE_STAGE_OUTPUTS = (
    "03_primary/interactions_with_log_features.parquet",
    *(f"03_primary/{s}_interactions.parquet" for s in ("train", "validation", "test")),
    *(f"05_model_input/{s}.parquet" for s in ("train", "validation", "test")),
)


def child_floor(project: Path, memory_limit: str, spill: Path) -> dict[str, Any]:
    """A lower bound of the feature stage's time on this machine: each table the stage writes, rewritten
    by a plain parquet-to-parquet copy with the stage's own writer (DuckDB ``COPY``, 2 threads, parquet
    format 2). No implementation that writes these tables can take less than writing them."""
    import duckdb

    from ccss_pipeline.datasets.tables import DUCKDB_PARQUET_VERSION

    con = duckdb.connect(config={"threads": 2, "memory_limit": memory_limit, "temp_directory": str(spill)})
    data, seconds = project / "data", {}
    with tempfile.TemporaryDirectory(dir=project) as tmp:
        for rel in FEATURE_STAGE_OUTPUTS:
            t0 = time.perf_counter()
            con.execute(
                f"COPY (SELECT * FROM read_parquet('{data / rel}')) TO '{Path(tmp) / 'copy.parquet'}' "
                f"(FORMAT parquet, PARQUET_VERSION {DUCKDB_PARQUET_VERSION})"
            )
            seconds[rel] = time.perf_counter() - t0
    return {"copy_seconds": seconds, "copy_seconds_total": sum(seconds.values())}


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run this script as a child stage: its RESULT line, wall time and its own peak RSS (``os.wait4``)."""
    import signal
    import threading

    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        return {"error": f"exit {code}: {stderr.strip()[-1500:]}", "wall_seconds": wall}
    result = next((json.loads(line[7:]) for line in reversed(stdout.splitlines()) if line.startswith("RESULT ")), {})
    return {**result, "wall_seconds": wall, "peak_rss_mib": usage.ru_maxrss / 1024}


# ----------------------------------------------------------------------------- the bench environment
def write_env(project: Path, raw: Path, engine: str, memory_limit: str, spill: Path, spark_memory: str) -> None:
    env = project / "conf" / "bench"
    env.mkdir(parents=True, exist_ok=True)
    tables = {
        "log": str(raw / "log"),
        "users": str(raw / "users.parquet"),
        "videos": str(raw / "videos.parquet"),
        "directions": str(raw / "directions.parquet"),
    }
    catalog = {
        "raw_source": {
            "type": "ccss_pipeline.datasets.EngineSourceDataset",
            "tables": tables,
            "engine": "${globals:data_engine}",
        }
    }
    (env / "catalog.yml").write_text(json.dumps(catalog, indent=2))  # JSON is YAML
    if engine == "duckdb":
        data_engine = {"backend": "duckdb", "threads": 2, "memory_limit": memory_limit, "temp_directory": str(spill)}
    else:
        data_engine = {"backend": "pyspark"}
        spark = {
            "spark.master": "local[2]",
            "spark.app.name": "ccss-bench",
            "spark.driver.memory": spark_memory,
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": 8,
            "spark.ui.enabled": False,
            "spark.sql.execution.arrow.pyspark.enabled": True,
            "spark.local.dir": str(spill),
        }
        (env / "spark.yml").write_text(json.dumps(spark, indent=2))
    (env / "globals.yml").write_text(json.dumps({"data_engine": data_engine}, indent=2))


def kedro_stage(project: Path, pipeline: str, timeout: float) -> dict[str, Any]:
    result = run_kedro(project, pipeline, timeout, extra=["--env", "bench"])
    keep = (
        "returncode",
        "timed_out",
        "wall_seconds",
        "peak_rss_mib",
        "user_cpu_seconds",
        "system_cpu_seconds",
        "nodes",
        "log_tail",
    )
    return {k: result[k] for k in keep}


def interaction_rows(project: Path) -> int:
    import duckdb

    path = project / "data" / "02_intermediate" / "interactions.parquet"
    target = f"{path}/*.parquet" if path.is_dir() else str(path)
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0])


def feature_floor(
    project: Path, fe: dict[str, Any], rows: int, args: argparse.Namespace, spill: Path
) -> dict[str, Any]:
    """What the stage cannot go below here: Kedro's own time in the run (start-up, catalog, hooks: the
    run's wall time less its nodes') plus writing its outputs (:func:`child_floor`); the rows/s that
    floor allows is the ceiling of any implementation that keeps the stage's datasets."""
    floor = _child(["--child-floor", str(project), args.memory_limit, str(spill)], args.timeout)
    if "error" in floor:
        return floor
    kedro = fe["wall_seconds"] - sum(x["seconds"] or 0 for x in fe["nodes"])
    total = kedro + floor["copy_seconds_total"]
    return {
        **floor,
        "kedro_seconds": kedro,
        "floor_seconds": total,
        "rows_per_sec_ceiling": rows / total,
        "share_of_stage": total / fe["wall_seconds"],
    }


def measure(rows: int, engine: str, work: Path, raw: Path, args: argparse.Namespace) -> dict[str, Any]:
    project = work / f"project_{engine}"
    if project.exists():
        shutil.rmtree(project)
    make_project(project)
    write_env(project, raw, engine, args.memory_limit, work / f"spill_{engine}", args.spark_memory)
    entry: dict[str, Any] = {"engine": engine, "target_rows": rows, "load_average_before": load_average()}
    for stage in ("data_validation", "feature_engineering"):
        res = kedro_stage(project, stage, args.timeout)
        entry[stage] = res
        if res["returncode"] != 0:
            entry["error"] = f"{stage} failed ({res['returncode']})"
            return entry
        if stage == "data_validation":
            entry["rows"] = n = interaction_rows(project)
    fe = entry["feature_engineering"]
    fe["rows_per_sec"] = n / fe["wall_seconds"]
    fe["rows_per_sec_in_nodes"] = n / max(sum(x["seconds"] or 0 for x in fe["nodes"]), 1e-9)
    entry["data_validation"]["rows_per_sec"] = n / entry["data_validation"]["wall_seconds"]
    if engine == "duckdb":
        entry["feature_floor"] = feature_floor(project, fe, n, args, work / f"spill_{engine}")
    model_input = project / "data" / "05_model_input" / "train.parquet"
    pairs = _child(
        [
            "--child-pairs",
            str(model_input),
            str(project / "data" / "04_feature" / "feature_spec.json"),
            str(work / f"pairs_{engine}.parquet"),
            str(args.chunk_rows),
        ],
        args.timeout,
    )
    if "rows" in pairs:
        pairs["rows_per_sec"] = pairs["rows"] / pairs["seconds"]
    entry["pairs"] = pairs
    stages = [entry["data_validation"], fe, pairs]
    entry["peak_rss_mib"] = max(s.get("peak_rss_mib") or 0 for s in stages)
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--spark-rows", type=int, default=None)
    ap.add_argument("--memory-limit", default="3GB")
    ap.add_argument("--spark-memory", default="3g")
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "data_engine.json"))
    ap.add_argument("--child-generate", nargs=2, metavar=("ROWS", "DIR"))
    ap.add_argument("--child-pairs", nargs=4, metavar=("MODEL_INPUT", "SPEC", "OUT", "CHUNK_ROWS"))
    ap.add_argument("--child-compare", nargs=2, metavar=("A", "B"))
    ap.add_argument("--child-floor", nargs=3, metavar=("PROJECT", "MEMORY_LIMIT", "SPILL"))
    args = ap.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    if args.child_generate:
        print("RESULT " + json.dumps(child_generate(int(args.child_generate[0]), Path(args.child_generate[1]))))
        return
    if args.child_pairs:
        a = args.child_pairs
        print("RESULT " + json.dumps(child_pairs(Path(a[0]), Path(a[1]), Path(a[2]), int(a[3]))))
        return
    if args.child_floor:
        project, limit, spill = args.child_floor
        print("RESULT " + json.dumps(child_floor(Path(project), limit, Path(spill))))
        return
    if args.child_compare:
        print("RESULT " + json.dumps(child_compare(Path(args.child_compare[0]), Path(args.child_compare[1]))))
        return

    sizes = sorted(set(args.rows or [10_000_000]))
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ccss-engine-"))
    results: dict[str, Any] = {"machine": machine_info(), "memory_limit": args.memory_limit, "sizes": []}
    out = Path(args.out)
    earlier = _earlier(out, sizes, args.memory_limit)
    for rows in sizes:
        work = base / f"rows_{rows}"
        work.mkdir(parents=True, exist_ok=True)
        raw = work / "raw"
        done = raw / "_GENERATED"  # a complete earlier generation in --workdir: reused
        if done.exists():
            gen = {**json.loads(done.read_text()), "reused": True}
        else:
            gen = _child(["--child-generate", str(rows), str(raw)], args.timeout)
            if "error" not in gen:
                done.write_text(json.dumps(gen))
        entry = {"generate": gen}
        if "error" in gen:
            results["sizes"].append({"target_rows": rows, **entry, "error": gen["error"]})
            continue
        entry.update(measure(rows, "duckdb", work, raw, args))
        entry["machine"] = machine_info()
        results["sizes"].append(entry)
        print(
            json.dumps(
                {k: v for k, v in entry.items() if k not in ("data_validation", "feature_engineering")}, default=str
            )[:2000],
            flush=True,
        )
        if args.spark_rows == rows:
            spark = measure(rows, "pyspark", work, raw, args)
            if "error" not in spark:
                spark["equal_to_duckdb"] = {
                    split: _child(
                        [
                            "--child-compare",
                            str(work / "project_duckdb" / "data" / "05_model_input" / f"{split}.parquet"),
                            str(work / "project_pyspark" / "data" / "05_model_input" / f"{split}.parquet"),
                        ],
                        args.timeout,
                    )
                    for split in ("train", "validation", "test")
                }
            results["spark"] = spark
            print(
                json.dumps(
                    {k: v for k, v in spark.items() if k not in ("data_validation", "feature_engineering")}, default=str
                )[:3000],
                flush=True,
            )
        _write(out, results, earlier)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    _write(out, results, earlier)
    print(json.dumps(aims(results), indent=2))


def _earlier(out: Path, sizes: list[int], memory_limit: str) -> dict[str, Any]:
    """What an earlier results file with the same memory limit holds that this run does not redo: the
    entries of the other sizes (each with the ``machine`` it was measured on), the Spark run and the
    note. A run of one size keeps the others."""
    if not out.exists():
        return {}
    try:
        previous = json.loads(out.read_text())
    except ValueError:
        return {}
    if previous.get("memory_limit") != memory_limit:
        return {}
    kept = [s for s in previous.get("sizes", []) if s.get("target_rows") not in sizes]
    earlier: dict[str, Any] = {"sizes": [{**s, "machine": s.get("machine", previous.get("machine"))} for s in kept]}
    for key in ("spark", "note"):
        if key in previous:
            earlier[key] = previous[key]
    return earlier


def _write(out: Path, results: dict[str, Any], earlier: dict[str, Any]) -> None:
    """The results of this run merged with the earlier ones (sizes by size); the aims over all of them."""
    merged = {**{k: v for k, v in earlier.items() if k != "sizes"}, **results}
    merged["sizes"] = sorted([*earlier.get("sizes", []), *results["sizes"]], key=lambda s: s["target_rows"])
    merged["aims"] = aims(merged)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2, default=str))


def aims(results: dict[str, Any]) -> dict[str, Any]:
    done = [s for s in results["sizes"] if "error" not in s]
    out: dict[str, Any] = {}
    at10 = next((s for s in done if s["target_rows"] == 10_000_000), None)
    if at10:
        v = at10["feature_engineering"]["rows_per_sec"]
        out["features_rows_per_sec_at_10M"] = {"value": v, "aim": FEATURES_AIM, "met": v >= FEATURES_AIM}
        ceiling = at10.get("feature_floor", {}).get("rows_per_sec_ceiling")
        if ceiling:
            out["features_rows_per_sec_at_10M"]["ceiling_of_writing_the_outputs"] = ceiling
    failed = [s["target_rows"] for s in results["sizes"] if "error" in s]
    if done or failed:
        peaks = {s["target_rows"]: s["peak_rss_mib"] for s in done}
        out["peak_rss_mib"] = {
            "values": peaks,
            "failed_sizes": failed,
            "aim": RSS_AIM_MIB,
            "met": bool(peaks) and not failed and max(peaks.values()) <= RSS_AIM_MIB,
        }
        if len(peaks) > 1:
            lo, hi = min(peaks), max(peaks)
            out["peak_rss_growth"] = {"rows_ratio": hi / lo, "rss_ratio": peaks[hi] / peaks[lo]}
    return out


if __name__ == "__main__":
    main()
