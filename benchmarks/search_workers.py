"""Several search workers on one Optuna study in PostgreSQL: wall time of 1 worker against 2.

    python benchmarks/search_workers.py [--trials 16] [--url postgresql+psycopg://...] [--out PATH]

A throw-away copy of the project (benchmarks/end_to_end.make_project) on the embedded default data runs
the data stages and the pair stage once; then the search stage (``kedro run --pipelines=search``, the
``dnn`` backbone, ``--trials`` trials, the default per-trial budget) runs twice against a fresh
database each time: once as one worker (torch's default threads), once as two workers started
together (one thread each: two processes on 2 cores). Wall time is from the first start to the last
exit, Kedro's start-up included. The server: ``--url`` (a database the script may create databases
on), else a throwaway cluster on loopback (tests/support/postgres.py), stopped at the end.

Aim (issue 14): 2 workers finish the study in <= 0.65x the wall time of one worker.
Writes benchmarks/results/search_workers.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from end_to_end import make_project, run_kedro  # noqa: E402
from machine import machine_info  # noqa: E402

AIM = 0.65


def _postgres_helper() -> Any:
    spec = importlib.util.spec_from_file_location("ccss_postgres", ROOT / "tests" / "support" / "postgres.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _use_database(project: Path, url: str) -> None:
    local = project / "conf" / "local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "credentials.yml").write_text(yaml.safe_dump({"optuna_db": {"url": url}}))
    (local / "catalog.yml").write_text(
        yaml.safe_dump(
            {"search_storage": {"type": "ccss_pipeline.datasets.StudyStorageDataset", "credentials": "optuna_db"}}
        )
    )


def _workers(project: Path, n: int, threads: int | None, timeout: float) -> dict[str, Any]:
    env = dict(
        os.environ, KEDRO_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", GX_ANALYTICS_ENABLED="False", MPLBACKEND="Agg"
    )
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    logs = [project / f"search_worker_{n}_{i}.log" for i in range(n)]
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", "--pipelines=search"],
            cwd=project,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    codes = [p.wait(timeout=timeout) for p in procs]
    wall = time.perf_counter() - t0
    ran = [log.read_text().count("(dnn): val AUC") for log in logs]
    out = {
        "workers": n,
        "threads_per_worker": threads or "torch default",
        "wall_seconds": wall,
        "returncodes": codes,
        "completed_trials_per_worker": ran,
    }
    if any(codes):
        out["log_tail"] = logs[codes.index(next(c for c in codes if c))].read_text()[-3000:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--url", default=None)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_workers.json")
    args = ap.parse_args()

    pg = _postgres_helper()
    with tempfile.TemporaryDirectory(prefix="ccss-search-bench-") as tmp:
        server, cluster = args.url, None
        if server is None:
            cluster = Path(tempfile.mkdtemp(prefix="ccss-bench-postgres-"))
            server = pg.start(cluster)
        try:
            project = Path(tmp) / "project"
            make_project(project)
            params = {"model_training": {"backbones": ["dnn"], "search": {"n_trials": args.trials}}}
            (project / "conf" / "local").mkdir(parents=True, exist_ok=True)
            (project / "conf" / "local" / "parameters.yml").write_text(yaml.safe_dump(params))
            upstream = run_kedro(
                project,
                "__default__",
                args.timeout,
                extra=["--pipelines", "data_validation,feature_engineering,counterfactual_pairs"],
            )
            if upstream.get("returncode"):
                raise SystemExit(f"the data stages failed: {upstream.get('log_tail')}")
            runs = []
            for n, threads in ((1, None), (2, 1)):
                _use_database(project, pg.new_database(server, f"bench_{n}_{uuid.uuid4().hex[:8]}"))
                runs.append(_workers(project, n, threads, args.timeout))
                print(json.dumps(runs[-1]), flush=True)
        finally:
            if cluster is not None:
                pg.stop(cluster)
    one, two = runs
    ratio = two["wall_seconds"] / one["wall_seconds"]
    result = {
        "machine": machine_info(),
        "trials": args.trials,
        "backbone": "dnn",
        "runs": runs,
        "aims": {"two_workers_wall_ratio": {"value": ratio, "aim": AIM, "met": ratio <= AIM}},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["aims"], indent=1))


if __name__ == "__main__":
    main()
