"""A throw-away copy of the project for the benchmarks that run ``kedro run`` on one data source
(shared by ``results_table.py`` and ``methods_compared.py``).

The copy gets ``conf/``, ``pyproject.toml`` and ``.telemetry`` of this checkout (the package is
installed), an empty ``src/`` and empty data layers; ``adult`` and ``sparse`` are small own tables
through an environment written into the copy (``conf/own_table`` with their schema and split).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("synthetic", "kuairand", "adult", "sparse")
LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)

ADULT_SCHEMA = """schema:
  source: table
  label: income
  user: null
  item: null
  timestamp: null
  side_tables: {}
  categorical: [type_employer, education, marital, occupation, relationship, race, sex, country]
  numerical:
    - {name: education_num, direction: +1, transform: identity}
    - {name: capital_gain, direction: +1, transform: log1p, count: true}
    - {name: hr_per_week, direction: +1, transform: identity}
    - {name: age, direction: none, transform: identity}
    - {name: capital_loss, direction: none, transform: log1p, count: true}
  log_features: []
"""
SPARSE_SCHEMA = """schema:
  source: table
  label: clicked
  user: uid
  item: iid
  timestamp: ts
  timestamp_unit: ms
  side_tables: {}
  categorical: [device]
  numerical:
    - {name: rare_count, direction: +1, transform: identity}
    - {name: visits, direction: +1, transform: identity}
    - {name: price, direction: -1, transform: log1p}
  log_features: []
"""


def set_parameters(root: Path, group: str, **values: Any) -> None:
    """Set top-level keys of ``conf/base/parameters_<group>.yml`` in the copy (comments are lost)."""
    path = root / "conf" / "base" / f"parameters_{group}.yml"
    params = yaml.safe_load(path.read_text())
    params[group].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_copy(root: Path, backbones: list[str], seeds: int) -> None:
    """conf/ and pyproject.toml of this checkout (the package is installed), empty data layers;
    ``model_training.backbones`` and ``n_seeds`` set."""
    shutil.copytree(ROOT / "conf", root / "conf")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy2(ROOT / ".telemetry", root / ".telemetry")
    (root / "src").mkdir()
    for layer in LAYERS:
        (root / "data" / layer).mkdir(parents=True)
    set_parameters(root, "model_training", backbones=backbones, n_seeds=seeds)


def table_env(root: Path, source: str, rows: int, adult_csv: Path) -> None:
    """An environment ``<source>`` in the copy (conf/own_table with its schema and split) and its table."""
    env = root / "conf" / source
    shutil.copytree(root / "conf" / "own_table", env)
    (env / "catalog.yml").write_text((env / "catalog.yml").read_text().replace("env: own_table", f"env: {source}"))
    table = root / "data" / "01_raw" / "own" / "interactions.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    if source == "adult":
        frame = pd.read_csv(adult_csv).drop(columns="fnlwgt")
        frame["income"] = (frame["income"].str.strip() == ">50K").astype(int)
        frame.sample(n=min(rows, len(frame)), random_state=0).to_csv(table, index=False)
        (env / "parameters_schema.yml").write_text(ADULT_SCHEMA)
        mode = "random"
    else:
        sys.path.insert(0, str(ROOT))
        from tests.support.sparse_counts import sparse_count_table

        sparse_count_table(n=rows, seed=0).to_csv(table, index=False)
        (env / "parameters_schema.yml").write_text(SPARSE_SCHEMA)
        mode = "time"
    fe = env / "parameters_feature_engineering.yml"
    fe.write_text(fe.read_text().replace("    mode: time", f"    mode: {mode}"))


def add_source_arguments(ap: argparse.ArgumentParser) -> None:
    """``--source`` and where each source's files are."""
    ap.add_argument("--source", choices=SOURCES, default="synthetic")
    ap.add_argument("--adult-csv", type=Path, default=ROOT.parent / "shared" / "data" / "adult" / "adult.csv")
    ap.add_argument("--table-rows", type=int, default=6000, help="rows of the adult / sparse table")
    ap.add_argument("--kuairand-dir", type=Path, default=ROOT.parent / "shared" / "data" / "kuairand")


def source_options(root: Path, args: argparse.Namespace) -> list[str]:
    """The ``kedro run`` options that read ``args.source`` in the copy at ``root`` (writing the own-table
    environment into it for ``adult`` and ``sparse``)."""
    if args.source == "kuairand":
        return ["--env", "kuairand", "--params", f"kuairand_dir={args.kuairand_dir.resolve()}"]
    if args.source in ("adult", "sparse"):
        table_env(root, args.source, args.table_rows, args.adult_csv)
        return ["--env", args.source]
    return []


def kedro_run(root: Path, options: list[str]) -> float:
    """``kedro run <options>`` in the copy, without telemetry; its wall seconds, or exit with its output."""
    env = dict(
        os.environ, KEDRO_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", GX_ANALYTICS_ENABLED="False", MPLBACKEND="Agg"
    )
    cmd = [str(Path(sys.executable).with_name("kedro")), "run", *options]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[1:])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return time.perf_counter() - t0
