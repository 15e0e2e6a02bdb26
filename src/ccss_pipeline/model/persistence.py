"""Trained models as the catalog holds them, rebuilt into modules: one place for the naming and the rules.

The files (``model.pt``: the state_dict, loaded with ``weights_only=True``; ``model.json``: the backbone
config and the feature-spec fingerprint) are :class:`ccss_pipeline.datasets.ModelCollectionDataset`'s;
a model is rebuilt here, and never paired silently with another feature spec.
"""

from __future__ import annotations

from typing import Any

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.lineage import SPEC_KEY, StaleArtifactError, require_spec
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.spec import FeatureSpec


def spec_hash(spec: FeatureSpec) -> str:
    """Stable hash of the feature spec contents."""
    return spec.fingerprint


def model_key(backbone: str, variant: str, seed: int) -> str:
    """Name (folder) of one trained model: ``<backbone>__<variant>__seed<seed>``."""
    return f"{backbone}__{variant}__seed{seed}"


def chosen_models(
    spec: FeatureSpec, trained_models: dict[str, dict[str, Any]], backbones: list[str], seed: int
) -> dict[str, tuple[str, CTRModel]]:
    """``{backbone: (name, model)}`` of the model served per backbone — its CCSS fit with the first seed
    — rebuilt and checked against ``spec``; a missing one fails naming the models there are."""
    chosen = {}
    for backbone in backbones:
        name = model_key(backbone, "ccss", seed)
        if name not in trained_models:
            raise StaleArtifactError(
                f"'trained_models' has no {name!r} (the CCSS model of backbone {backbone!r} "
                f"with the first seed {seed}); it has {sorted(trained_models)}. Train it "
                "with `kedro run --pipelines=model_training`"
            )
        chosen[backbone] = (name, rebuild_model(spec, name, trained_models[name]))
    return chosen


def rebuild_model(spec: FeatureSpec, name: str, entry: dict[str, Any]) -> CTRModel:
    """A model of the ``trained_models`` catalog entry (``{"config", "state_dict"}``) in eval mode,
    refused when it was trained for another feature spec."""
    config = entry["config"]
    require_spec(f"trained_models['{name}']", {SPEC_KEY: config.get("spec_hash")}, spec, "model_training")
    model = CTRModel(spec, BackboneConfig(**config["backbone"]))
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def first_seed_models(trained_models: dict[str, dict[str, Any]]) -> dict[tuple[str, str], str]:
    """``(backbone, variant) -> model name`` of the lowest seed of each: the models shown per backbone."""
    chosen: dict[tuple[str, str], tuple[int, str]] = {}
    for name, entry in trained_models.items():
        config = entry["config"]
        backbone = name.partition("__")[0]
        variant = str(config.get("variant") or name.split("__")[1])
        seed = int(config.get("seed", config.get("optimizer", {}).get("seed", 0)))
        if (backbone, variant) not in chosen or seed < chosen[(backbone, variant)][0]:
            chosen[(backbone, variant)] = (seed, name)
    return {key: name for key, (_, name) in sorted(chosen.items())}
