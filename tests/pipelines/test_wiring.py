"""Pipeline wiring without running anything: every registered pipeline's datasets are catalog entries,
and each stage reads exactly what the stages before it write (plus the named sources)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io.catalog_config_resolver import CatalogConfigResolver

from ccss_pipeline.pipeline_registry import register_pipelines

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
