"""Build a throw-away copy of the Kedro project in a temporary folder and run pipelines in it.

The copy gets the repository's ``conf/`` and ``pyproject.toml`` (the package itself is installed),
empty data layer folders, and optional ``conf/local`` overrides, so a test never touches ``data/`` of
the working tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
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
DATA_PIPELINES = ["data_validation", "feature_engineering"]
SPLITS = ("train", "validation", "test")

#: A small synthetic source: the whole data pipeline runs in seconds.
SMALL_SYNTHETIC = {
    "raw_source": {
        "type": "CachedDataset",
        "dataset": {
            "type": "ccss_pipeline.datasets.SyntheticSourceDataset",
            "n_users": 300,
            "n_videos": 400,
            "n_days": 10,
            "impressions_per_user_day": 3.0,
            "seed": 11,
        },
    }
}


def make_project(
    root: Path,
    local_catalog: dict[str, Any] | None = None,
    local_parameters: dict[str, Any] | None = None,
) -> Path:
    """A runnable project at ``root`` (created): conf/, pyproject.toml, data/ layers, conf/local overrides."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "src").mkdir(exist_ok=True)  # bootstrap_project wants it; the package is installed
    shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    for layer in LAYERS:
        (root / "data" / layer).mkdir(parents=True, exist_ok=True)
    local = root / "conf" / "local"
    local.mkdir(exist_ok=True)
    if local_catalog:
        (local / "catalog.yml").write_text(yaml.safe_dump(local_catalog, sort_keys=False))
    if local_parameters:
        (local / "parameters.yml").write_text(yaml.safe_dump(local_parameters, sort_keys=False))
    return root


def run_pipelines(
    root: Path,
    env: str | None = None,
    pipeline_names: list[str] | None = None,
    runtime_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bootstrap the project at ``root`` and run ``pipeline_names`` (default: the data pipelines)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(root)
    with KedroSession.create(project_path=root, env=env, runtime_params=runtime_params) as session:
        return session.run(pipeline_names=pipeline_names or DATA_PIPELINES)


def downstream_files(root: Path) -> list[Path]:
    """Outputs written after the raw validation gate (must not exist when the gate fails)."""
    paths = [root / "data" / "02_intermediate" / f for f in ("interactions.parquet", "source_truth.json")]
    paths += sorted((root / "data" / "03_primary").glob("*.parquet"))
    paths += sorted((root / "data" / "04_feature").glob("*"))
    paths += sorted((root / "data" / "05_model_input").glob("*"))
    return [p for p in paths if p.exists()]


def model_input_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data" / "05_model_input").glob("*") if p.exists())
