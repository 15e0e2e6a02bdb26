"""Trained models as the catalog holds them: one record per model, one place for the naming and the rules.

A :class:`TrainedModel` is the weights plus the settings they were trained with; its files (``model.pt``:
the state_dict, loaded with ``weights_only=True``; ``model.json``: :meth:`TrainedModel.config`) are
:class:`ccss_pipeline.datasets.ModelCollectionDataset`'s. The module is rebuilt here
(:meth:`TrainedModel.rebuild`), and never paired silently with another feature spec. The monotone
recalibration fitted on validation (:mod:`ccss_pipeline.model.calibration`) is part of the record
(``model.json``'s ``recalibration``; a file without it is a model without one) and the rebuilt module
carries it, so every probability made from the module is the recalibrated one. The monotonicity
method the constrained model was trained with (``model_training.method``) is recorded too (``method``,
``method_settings``): a file without it was written before methods existed, by CCSS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.lineage import StaleArtifactError, require_spec
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.spec import FeatureSpec

BASELINE, CCSS = "baseline", "ccss"
_KEY = re.compile(r"^(?P<backbone>[^_].*?)__(?P<variant>[^_].*?)__seed(?P<seed>-?\d+)$")


def model_key(backbone: str, variant: str, seed: int) -> str:
    """Name (folder) of one trained model: ``<backbone>__<variant>__seed<seed>``."""
    return f"{backbone}__{variant}__seed{seed}"


def parse_model_key(name: str) -> tuple[str, str, int] | None:
    """(backbone, variant, seed) of a :func:`model_key` name; None for any other name."""
    m = _KEY.match(name)
    return (m["backbone"], m["variant"], int(m["seed"])) if m else None


@dataclass(frozen=True)
class TrainedModel:
    """One trained model: its weights and the settings it was trained with (frozen: the record is what
    was trained; nothing downstream edits it). ``spec_fingerprint`` is the feature spec it was fitted on."""

    name: str
    backbone: BackboneConfig
    variant: str
    seed: int
    spec_fingerprint: str | None
    state_dict: Mapping[str, torch.Tensor]
    move: str | None = None
    contrastive: ContrastiveConfig | None = None
    optimizer: OptimizerConfig | None = None
    best_epoch: int | None = None
    best_val_auc: float | None = None
    recalibration: Recalibration = Recalibration()
    method: str | None = None  # the monotonicity method of a constrained model; None for a baseline
    method_settings: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, model: CTRModel, spec: FeatureSpec, variant: str, seed: int, **settings: Any) -> TrainedModel:
        """The record of a module just trained on ``spec`` (named :func:`model_key`); ``settings``: the
        optional fields (move, contrastive, optimizer, best_epoch, best_val_auc, recalibration, method,
        method_settings)."""
        return cls(
            name=model_key(model.cfg.name, variant, seed),
            backbone=model.cfg,
            variant=variant,
            seed=seed,
            spec_fingerprint=spec.fingerprint,
            state_dict=model.state_dict(),
            **settings,
        )

    @property
    def backbone_name(self) -> str:
        return self.backbone.name

    def config(self) -> dict[str, Any]:
        """``model.json``: everything but the weights (the spec fingerprint under ``spec_hash``)."""
        return {
            "backbone": self.backbone.model_dump(),
            "variant": self.variant,
            "seed": self.seed,
            "move": self.move,
            "contrastive": None if self.contrastive is None else self.contrastive.model_dump(),
            "optimizer": None if self.optimizer is None else self.optimizer.model_dump(),
            "spec_hash": self.spec_fingerprint,
            "best_epoch": self.best_epoch,
            "best_val_auc": self.best_val_auc,
            "recalibration": self.recalibration.to_dict(),
            "method": self.method,
            "method_settings": None if self.method_settings is None else dict(self.method_settings),
        }

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> TrainedModel:
        """The record of ``model.json`` + weights; variant and seed fall back to the folder name, a file
        without ``recalibration`` (written before recalibration existed) is a model without one, and one
        without ``method`` (written before methods existed) was trained by CCSS if it is a CCSS model."""
        parsed = parse_model_key(name)
        optimizer = config.get("optimizer")
        seed = config.get("seed", (optimizer or {}).get("seed", parsed[2] if parsed else 0))
        contrastive = config.get("contrastive")
        variant = str(config.get("variant") or (parsed[1] if parsed else "model"))
        return cls(
            name=name,
            backbone=BackboneConfig(**config["backbone"]),
            variant=variant,
            seed=int(seed),
            spec_fingerprint=config.get("spec_hash"),
            state_dict=state_dict,
            move=config.get("move"),
            contrastive=ContrastiveConfig(**contrastive) if contrastive else None,
            optimizer=OptimizerConfig(**optimizer) if optimizer else None,
            best_epoch=config.get("best_epoch"),
            best_val_auc=config.get("best_val_auc"),
            recalibration=Recalibration.from_dict(config.get("recalibration")),
            method=config.get("method", CCSS if variant == CCSS else None),
            method_settings=config.get("method_settings", {} if variant == CCSS else None),
        )

    def rebuild(self, spec: FeatureSpec, recalibrated: bool = True) -> CTRModel:
        """The module in eval mode, carrying its recalibration (``recalibrated=False``: the raw model, for
        the figures "before recalibration"); refused when it was trained for another feature spec."""
        require_spec(f"trained_models['{self.name}']", self, spec, "model_training")
        model = CTRModel(spec, self.backbone, self.recalibration if recalibrated else None)
        model.load_state_dict(dict(self.state_dict))
        return model.eval()


def chosen_models(
    spec: FeatureSpec, trained_models: Mapping[str, TrainedModel], backbones: Sequence[str], seed: int
) -> dict[str, tuple[str, CTRModel]]:
    """``{backbone: (name, model)}`` of the model served per backbone — its CCSS fit with the first seed
    — rebuilt and checked against ``spec``; a missing one fails naming the models there are."""
    chosen = {}
    for backbone in backbones:
        name = model_key(backbone, CCSS, seed)
        if name not in trained_models:
            raise StaleArtifactError(
                f"'trained_models' has no {name!r} (the CCSS model of backbone {backbone!r} "
                f"with the first seed {seed}); it has {sorted(trained_models)}. Train it "
                "with `kedro run --pipelines=model_training`"
            )
        chosen[backbone] = (name, trained_models[name].rebuild(spec))
    return chosen


def first_seed_models(trained_models: Mapping[str, TrainedModel]) -> dict[tuple[str, str], str]:
    """``(backbone, variant) -> model name`` of the lowest seed of each: the models shown per backbone."""
    chosen: dict[tuple[str, str], tuple[int, str]] = {}
    for name, model in trained_models.items():
        key = (model.backbone_name, model.variant)
        if key not in chosen or model.seed < chosen[key][0]:
            chosen[key] = (model.seed, name)
    return {key: name for key, (_, name) in sorted(chosen.items())}
