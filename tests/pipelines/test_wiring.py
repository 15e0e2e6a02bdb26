"""Pipeline wiring without running anything: every registered pipeline's datasets are catalog entries,
and each stage reads exactly what the stages before it write (plus the named sources)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io.catalog_config_resolver import CatalogConfigResolver

from ccss_pipeline.pipeline_registry import PIPELINE_NAMES, register_pipelines

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["data_validation", "feature_engineering", "counterfactual_pairs", "model_training", "evaluation"]
#: what a full run reads that no stage writes
SOURCES = {"raw_source", "project_folder", "search_storage", "project_lineage", "parameters", "optuna_plot_images"}


@pytest.fixture(scope="module")
def pipelines():
    return register_pipelines()


@pytest.fixture(scope="module")
def catalog() -> CatalogConfigResolver:
    loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), base_env="base", default_run_env="base")
    return CatalogConfigResolver(config=loader["catalog"])


def _free(pipeline) -> set[str]:
    return {d for d in pipeline.inputs() if not d.startswith("params:")}


def test_every_dataset_is_a_catalog_entry(pipelines, catalog):
    """No node output silently becomes a MemoryDataset (lost at the end of a run, unseen by DVC)."""
    loose = {
        name: sorted(
            d
            for d in p.datasets()
            if not d.startswith("params:")
            and d != "parameters"
            and d not in catalog.config
            and not catalog.match_dataset_pattern(d)
        )
        for name, p in pipelines.items()
    }
    assert not any(loose.values()), loose


def test_each_stage_reads_only_what_earlier_stages_write(pipelines):
    written: set[str] = set()
    for stage in STAGES:
        unmet = _free(pipelines[stage]) - written - SOURCES
        assert not unmet, f"{stage} reads {sorted(unmet)}, which no earlier stage writes"
        written |= {d for n in pipelines[stage].nodes for d in n.outputs}  # also those it reads itself
    assert _free(pipelines["__default__"]) == SOURCES


def test_composite_pipelines_are_their_stages(pipelines):
    assert set(pipelines["__default__"].nodes) == set().union(*(pipelines[s].nodes for s in STAGES))
    train = {"data_validation", "feature_engineering", "counterfactual_pairs", "model_training"}
    assert set(pipelines["train"].nodes) == set().union(*(pipelines[s].nodes for s in train))
    assert _free(pipelines["train"]) == {"raw_source", "project_folder", "search_storage"}
    # serving pipelines read the trained models and the spec, never the training tables
    for name in ("score", "export"):
        assert not _free(pipelines[name]) & {"train_model_input", "validation_model_input", "counterfactual_pairs"}


def test_a_named_pipeline_is_built_alone_and_equals_the_full_registrys(pipelines):
    for name in ("feature_engineering", "train", "search"):
        alone = register_pipelines([name])
        assert list(alone) == [name]
        assert set(alone[name].nodes) == set(pipelines[name].nodes)
    assert register_pipelines(["no_such_pipeline"]) == {}  # Kedro then reloads all to suggest names


def test_kedros_filter_applies_only_when_kedro_loads(monkeypatch):
    """Kedro's lazy loader gets the command's pipelines alone; a direct call gets every pipeline even
    when Kedro's filter is still set and unloaded (what a run that failed before loading leaves)."""
    from kedro.framework.project import pipelines as project_pipelines

    monkeypatch.setattr(project_pipelines, "_pipelines_module", "ccss_pipeline.pipeline_registry")
    monkeypatch.setattr(project_pipelines, "_content", {})
    monkeypatch.setattr(project_pipelines, "_requested_pipelines", ["export"])
    monkeypatch.setattr(project_pipelines, "_is_data_loaded", False)  # `kedro run --pipeline export`
    assert list(project_pipelines.keys()) == ["export"]
    monkeypatch.setattr(project_pipelines, "_requested_pipelines", ["score"])
    monkeypatch.setattr(project_pipelines, "_is_data_loaded", False)  # a run that stopped before loading
    assert len(register_pipelines()) == len(PIPELINE_NAMES)


_DATA_STAGE_RUN = """
import sys
from pathlib import Path
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project

bootstrap_project(Path(sys.argv[1]))
pipelines.set_requested(["data_validation", "feature_engineering"])  # what `kedro run --pipelines ...` does
assert sorted(pipelines.keys()) == ["data_validation", "feature_engineering"], sorted(pipelines.keys())
import ccss_pipeline.datasets as datasets
datasets.EngineTableDataset, datasets.FeatureSpecDataset, datasets.ValidationReportDataset
heavy = sorted(m for m in ("torch", "sklearn", "optuna", "matplotlib") if m in sys.modules)
from ccss_pipeline.pipeline_registry import register_pipelines
direct = len(register_pipelines())  # after the run's load: every pipeline
pipelines.set_requested(None)  # `kedro run`, `kedro viz`: everything
print(len(pipelines.keys()), direct, heavy)
"""


def test_a_data_stage_run_imports_no_training_library(tmp_path):
    """`kedro run --pipeline feature_engineering` builds only that stage and its catalog datasets, so
    PyTorch, scikit-learn, Optuna and matplotlib are not imported (~5 s of start-up at every such run)."""
    script = tmp_path / "data_stage_run.py"  # a file, not -c (pyspark exits a main module without __file__)
    script.write_text(_DATA_STAGE_RUN)
    proc = subprocess.run(
        [sys.executable, str(script), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"{len(PIPELINE_NAMES)} {len(PIPELINE_NAMES)} []"
