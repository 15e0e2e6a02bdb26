"""Small typed settings shared by tests that train or search on tiny inputs."""

from __future__ import annotations

import yaml

from ccss_pipeline.config import (
    BackboneConfig,
    FeatureConfig,
    LogFeature,
    OptimizerConfig,
    SchemaConfig,
    SearchConfig,
    TrainingConfig,
)
from tests.kedro_project import REPO

#: the study file of a tiny search, relative to its storage root
STORAGE = "data/optuna.db"


def tiny_training(**search_kw) -> TrainingConfig:
    search = {
        "n_trials": 2,
        "n_startup_trials": 1,
        "max_epochs": 1,
        "storage_path": STORAGE,
        "violation_rows": 100,
        "grid_levels": 12,
        "refine_trials": 0,  # TPE to the end unless a test asks for the λ refinement
        **search_kw,
    }
    return TrainingConfig(
        backbones=["dnn"],
        backbone=BackboneConfig(hidden_units=[8], embedding_dim=4),
        optimizer=OptimizerConfig(batch_size=128, max_epochs=1, device="cpu"),
        search=SearchConfig(**search),
    )


def project_schema(env: str = "base") -> SchemaConfig:
    """The schema of one of the project's configuration environments (conf/<env>)."""
    path = REPO / "conf" / env / "parameters_schema.yml"
    return SchemaConfig(**yaml.safe_load(path.read_text())["schema"])


def project_features(env: str = "base") -> FeatureConfig:
    """The feature-engineering settings of one of the project's environments (conf/<env>)."""
    path = REPO / "conf" / env / "parameters_feature_engineering.yml"
    return FeatureConfig(**yaml.safe_load(path.read_text())["feature_engineering"])


#: every entity and statistic of the leak-free log features, plus an unsmoothed rate
ALL_LOG_FEATURES = [
    LogFeature(name=f"{e}_{s}", entity=e, stat=s, prior_strength=k)
    for e in ("user", "item")
    for s, k in (("impressions", 20), ("clicks", 20), ("smoothed_ctr", 2), ("active_days", 20))
] + [LogFeature(name="item_raw_ctr", entity="item", stat="smoothed_ctr", prior_strength=0)]
