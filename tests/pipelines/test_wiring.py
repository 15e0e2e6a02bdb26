"""Pipeline wiring without running anything: every registered pipeline's datasets are catalog entries,
and each stage reads exactly what the stages before it write (plus the named sources)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io.catalog_config_resolver import CatalogConfigResolver

from ccss_pipeline.pipeline_registry import register_pipelines
from ccss_pipeline.pipelines.node_functions import NodeFunction

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


def test_every_node_function_is_importable_and_takes_its_inputs(pipelines):
    """The check Kedro makes when a node is built, which it cannot make on a function that is imported
    only when its node runs (:mod:`ccss_pipeline.pipelines.node_functions`): the function exists, has
    the name the node reports, and its signature binds the node's inputs (each node lists them in order).
    Each is a function of its own stage's nodes module, which the import graph sees (lint-imports, DVC deps),
    not a generator function (Kedro streams those, and cannot tell through the wrapper), and Kedro's typed
    parameters see its signature and annotations through the wrapper."""
    for node in {n for p in pipelines.values() for n in p.nodes}:
        assert isinstance(node.func, NodeFunction), node.name
        assert node.func.module == f"ccss_pipeline.pipelines.{node.namespace}.nodes", node.name
        function = node.func.resolve()
        assert function.__name__ == node.func.__name__, node.name
        assert not inspect.isgeneratorfunction(function), node.name
        assert inspect.signature(node.func) == inspect.signature(function), node.name
        assert typing.get_type_hints(node.func) == typing.get_type_hints(function), node.name
        try:
            inspect.signature(function).bind(*node.inputs)
        except TypeError as exc:
            raise AssertionError(f"{node.name}: {function.__name__} does not take {node.inputs}: {exc}") from exc


_DATA_STAGE_RUN = """
import sys
from pathlib import Path
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project

from kedro.framework.session import KedroSession
from kedro.validation import ParameterValidator

bootstrap_project(Path(sys.argv[1]))
names = ["data_validation", "feature_engineering"]
pipelines.set_requested(names)  # what `kedro run --pipelines ...` does
requested = len(pipelines.keys())  # every pipeline is built, whatever the command names
import ccss_pipeline.datasets as datasets
datasets.EngineTableDataset, datasets.FeatureSpecDataset, datasets.ValidationReportDataset
with KedroSession.create(project_path=Path(sys.argv[1])) as session:  # the run's typed parameters
    raw = session.load_context().config_loader["parameters"]
typed = ParameterValidator({n: pipelines[n] for n in names}).validate_raw_params(raw)
assert type(typed["feature_engineering"]).__name__ == "FeatureConfig", typed["feature_engineering"]
assert type(typed["data_validation"]).__name__ == "ValidationConfig", typed["data_validation"]
heavy = sorted(m for m in ("torch", "sklearn", "optuna", "matplotlib") if m in sys.modules)
pipelines.set_requested(None)  # `kedro run`, `kedro viz`: everything
print(requested, len(pipelines.keys()), heavy)
"""


def test_a_data_stage_run_imports_no_training_library(tmp_path, pipelines):
    """`kedro run --pipeline feature_engineering` builds every pipeline, that stage's catalog datasets and
    typed parameters without importing PyTorch, scikit-learn, Optuna or matplotlib (~5 s of start-up at
    every such run): a nodes module is imported for the pipelines being run."""
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
    assert proc.stdout.strip().splitlines()[-1] == f"{len(pipelines)} {len(pipelines)} []"
