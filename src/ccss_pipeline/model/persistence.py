"""Saving and loading trained models without pickling modules.

``model.pt`` holds only the state_dict (loaded with ``weights_only=True``); ``model.json`` holds what is
needed to rebuild the module (backbone config) plus a hash of the feature spec, so a model is never
silently paired with a different spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.files import atomic_write
from ccss_pipeline.lineage import SPEC_KEY, StaleArtifactError, require_spec
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.spec import FeatureSpec

WEIGHTS_NAME = "model.pt"
CONFIG_NAME = "model.json"


def spec_hash(spec: FeatureSpec) -> str:
    """Stable hash of the feature spec contents."""
    return spec.fingerprint


def _atomic_write(path: Path, write: Any) -> None:
    atomic_write(path, write)


def save_model(model: CTRModel, config: dict[str, Any] | None, directory: str | Path, spec: FeatureSpec | None = None) -> Path:
    """Write ``model.pt`` (state_dict) and ``model.json`` (backbone config + caller's ``config``) atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = dict(config or {})
    meta["backbone"] = model.cfg.model_dump()
    if spec is not None:
        meta["spec_hash"] = spec_hash(spec)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic_write(directory / WEIGHTS_NAME, lambda p: torch.save(state, p))
    _atomic_write(directory / CONFIG_NAME, lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str)))
    return directory


def load_config(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / CONFIG_NAME).read_text())


def load_model(directory: str | Path, spec: FeatureSpec, device: torch.device | str = "cpu") -> CTRModel:
    """Rebuild the CTRModel from ``model.json`` and load ``model.pt`` with ``weights_only=True``."""
    directory = Path(directory)
    meta = load_config(directory)
    if "spec_hash" in meta and meta["spec_hash"] != spec_hash(spec):
        raise ValueError(f"model in {directory} was trained with a different feature spec")
    model = CTRModel(spec, BackboneConfig(**meta["backbone"]))
    state = torch.load(directory / WEIGHTS_NAME, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(device)
    model.eval()
    return model


def model_key(backbone: str, variant: str, seed: int) -> str:
    """Name (folder) of one trained model: ``<backbone>__<variant>__seed<seed>``."""
    return f"{backbone}__{variant}__seed{seed}"


def chosen_models(spec: FeatureSpec, trained_models: dict[str, dict[str, Any]], backbones: list[str],
                  seed: int) -> dict[str, tuple[str, CTRModel]]:
    """``{backbone: (name, model)}`` of the model served per backbone — its CCSS fit with the first seed
    — rebuilt and checked against ``spec``; a missing one fails naming the models there are."""
    chosen = {}
    for backbone in backbones:
        name = model_key(backbone, "ccss", seed)
        if name not in trained_models:
            raise StaleArtifactError(f"'trained_models' has no {name!r} (the CCSS model of backbone {backbone!r} "
                                     f"with the first seed {seed}); it has {sorted(trained_models)}. Train it "
                                     "with `kedro run --pipelines=model_training`")
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
