"""Small typed settings shared by tests that train or search on tiny inputs."""

from __future__ import annotations

from ccss_pipeline.config import BackboneConfig, OptimizerConfig, SearchConfig, TrainingConfig

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
        **search_kw,
    }
    return TrainingConfig(
        backbones=["dnn"],
        backbone=BackboneConfig(hidden_units=[8], embedding_dim=4),
        optimizer=OptimizerConfig(batch_size=128, max_epochs=1, device="cpu"),
        search=SearchConfig(**search),
    )
