"""A folder of trained models, one sub-folder each: ``model.pt`` (state_dict) + ``model.json``.

Loads and saves ``{name: TrainedModel}`` (:mod:`ccss_pipeline.model.persistence`). No pickled modules:
weights load with ``torch.load(..., weights_only=True)`` and the module is rebuilt from the record by the
node that needs it (``TrainedModel.rebuild``). The whole folder is written to a temporary sibling and
swapped in, so a failed save never leaves a mix of old and new models; a save killed between the two
renames of that swap leaves only the hidden backup, which the next load or save puts back
(:func:`ccss_pipeline.files.restore_interrupted_swap`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError

from ccss_pipeline.files import atomic_write, restore_interrupted_swap
from ccss_pipeline.model.persistence import TrainedModel

WEIGHTS, CONFIG = "model.pt", "model.json"


class ModelCollectionDataset(AbstractDataset[dict[str, TrainedModel], dict[str, TrainedModel]]):
    """Saves/loads ``{name: TrainedModel}``, a sub-folder per model."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, TrainedModel]:
        restore_interrupted_swap(self._path)  # a save killed mid-swap left only the hidden backup
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: no trained models (run the model_training pipeline first)")
        models = {}
        for sub in sorted(p for p in self._path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not (sub / WEIGHTS).is_file() or not (sub / CONFIG).is_file():
                continue
            try:
                config = json.loads((sub / CONFIG).read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DatasetError(f"{sub / CONFIG}: cannot be read as JSON ({exc}); rerun model_training") from exc
            try:
                state = torch.load(sub / WEIGHTS, map_location="cpu", weights_only=True)
            except Exception as exc:  # truncated zip, foreign pickle refused by weights_only, ...
                raise DatasetError(
                    f"{sub / WEIGHTS}: not a readable state_dict ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}); rerun model_training"
                ) from exc
            try:
                models[sub.name] = TrainedModel.from_config(sub.name, config, state)
            except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
                raise DatasetError(
                    f"{sub / CONFIG}: not a trained-model record ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}); rerun model_training"
                ) from exc
        if not models:
            raise DatasetError(f"{self._path}: no model sub-folder with {WEIGHTS} and {CONFIG}")
        return models

    def save(self, data: dict[str, TrainedModel]) -> None:
        if self._path.exists() and not self._path.is_dir():
            raise DatasetError(f"{self._path} exists and is not a folder")

        def write(tmp: Path) -> None:
            for name, model in data.items():
                sub = tmp / name
                sub.mkdir(parents=True)
                state = {k: v.detach().cpu() for k, v in model.state_dict.items()}
                torch.save(state, sub / WEIGHTS)
                (sub / CONFIG).write_text(json.dumps(model.config(), indent=2, sort_keys=True))

        atomic_write(self._path, write)

    def _exists(self) -> bool:
        restore_interrupted_swap(self._path)
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
