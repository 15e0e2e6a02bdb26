"""End to end: wall time and peak memory of the default ``kedro run`` on the embedded synthetic data.

    python benchmarks/end_to_end.py [--pipeline __default__] [--timeout 1800] [--keep DIR] [--out PATH]

The project (conf/, pyproject.toml, .telemetry) is copied into a temporary directory with an empty
src/ (the installed package is used) and empty data layer folders, so nothing of the working copy's
data/ is read or overwritten and every node really runs. ``kedro run`` runs there as a child process
(KEDRO_DISABLE_TELEMETRY=true, the project's conf/logging.yml); its peak resident set comes from
``os.wait4`` (the child's own rusage, the same figure as ``getrusage(RUSAGE_CHILDREN)``), and
per-node durations from the "Running node: X" / "Completed node: X" log timestamps.
Writes benchmarks/results/end_to_end.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import load_average, machine_info  # noqa: E402

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (Running|Completed) node: (.*)$")


def make_project(dest: Path) -> None:
    """A runnable copy: configuration and project metadata, empty source and data folders."""
    shutil.copytree(ROOT / "conf", dest / "conf")
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    if (ROOT / ".telemetry").exists():
        shutil.copy2(ROOT / ".telemetry", dest / ".telemetry")
    (dest / "src").mkdir()
    layers = {p.name for p in (ROOT / "data").iterdir() if p.is_dir()} if (ROOT / "data").is_dir() else set()
    for layer in layers | {
        f"0{i}_{n}"
        for i, n in enumerate(
            ["raw", "intermediate", "primary", "feature", "model_input", "models", "model_output", "reporting"], 1
        )
    }:
        (dest / "data" / layer).mkdir(parents=True, exist_ok=True)


def parse_node_times(log: str) -> list[dict[str, Any]]:
    """Per-node seconds from the runner's log, in completion order."""
    completed, running = [], []
    for line in log.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        (running if m.group(2) == "Running" else completed).append((stamp, m.group(3).strip()))
    starts: dict[str, datetime] = {}
    names = {name for _, name in completed}
    for stamp, text in running:  # "Running node: <name>: func([..]) -> [..]" or the derived name itself
        head = text.split(":", 1)[0].strip()  # Kedro logs the node's own name, the namespace only when completed
        name = (
            text
            if text in names
            else next((n for n in names if text.startswith(n + ": ") or n == head or n.endswith("." + head)), text)
        )
        starts.setdefault(name, stamp)
    nodes = []
    for stamp, name in completed:
        start = starts.get(name)
        nodes.append({"node": name, "seconds": None if start is None else (stamp - start).total_seconds()})
    return nodes


def run_kedro(project: Path, pipeline: str, timeout: float, extra: list[str] | None = None) -> dict[str, Any]:
    env = dict(
        os.environ,
        KEDRO_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="False",
        MPLBACKEND="Agg",
        KEDRO_LOGGING_CONFIG=str(project / "conf" / "logging.yml"),
        PYTHONUNBUFFERED="1",
    )
    cmd = [sys.executable, "-m", "kedro", "run"] + ([] if pipeline == "__default__" else ["--pipeline", pipeline])
    cmd += list(extra or [])
    log_path = project / f"kedro_run_{pipeline}.log"
    timed_out = threading.Event()
    with log_path.open("w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def _kill() -> None:
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log_path.read_text(errors="replace")
    nodes = parse_node_times(text)
    return {
        "command": " ".join(cmd[1:]),
        "returncode": proc.returncode,
        "timed_out": timed_out.is_set(),
        "wall_seconds": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "user_cpu_seconds": usage.ru_utime,
        "system_cpu_seconds": usage.ru_stime,
        "nodes_completed": len(nodes),
        "node_seconds_total": sum(n["seconds"] or 0 for n in nodes),
        "nodes": nodes,
        "log_tail": text[-3000:] if proc.returncode != 0 else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", default="__default__", help="pipeline to run (default: the default one)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before the run is killed")
    ap.add_argument("--keep", default=None, help="run in this (new) directory and keep it")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "end_to_end.json"))
    args = ap.parse_args()

    load_before = load_average()
    if args.keep:
        project = Path(args.keep)
        project.mkdir(parents=True, exist_ok=False)
        make_project(project)
        result = run_kedro(project, args.pipeline, args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="ccss-e2e-") as tmp:
            make_project(Path(tmp))
            result = run_kedro(Path(tmp), args.pipeline, args.timeout)
    result.update(pipeline=args.pipeline, load_average_before=load_before, load_average_after=load_average())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "end_to_end", "machine": machine_info(), **result}, indent=2))
    status = (
        "ok"
        if result["returncode"] == 0
        else ("TIMED OUT" if result["timed_out"] else f"FAILED ({result['returncode']})")
    )
    print(
        f"kedro run --pipeline {args.pipeline}: {status}, {result['wall_seconds']:.1f} s wall, "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB, {result['nodes_completed']} nodes"
    )
    for n in sorted(result["nodes"], key=lambda n: -(n["seconds"] or 0))[:10]:
        print(f"  {n['seconds'] if n['seconds'] is not None else float('nan'):8.2f} s  {n['node']}")
    if result["log_tail"]:
        print(result["log_tail"])
    print(f"wrote {out}")
    if result["returncode"] != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
