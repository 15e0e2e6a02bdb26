"""A folder of exported ONNX models: ``<backbone>.onnx`` + ``<backbone>.json`` (the encoding description).

The whole folder is written to a temporary sibling and swapped in (:func:`ccss_pipeline.files.atomic_write`),
so a failed save never leaves a mix of old and new exports, or an ``.onnx`` without its description.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from ccss_pipeline.files import atomic_write, restore_interrupted_swap

MODEL_SUFFIX, ENCODING_SUFFIX = ".onnx", ".json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class OnnxFolderDataset(AbstractDataset[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]):
    """Saves/loads ``{name: {"onnx": bytes, "encoding": dict}}`` as ``<name>.onnx`` + ``<name>.json``."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, dict[str, Any]]:
        restore_interrupted_swap(self._path)  # a save killed mid-swap left only the hidden backup
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: no exported models (run `kedro run --pipelines=export` first)")
        models: dict[str, dict[str, Any]] = {}
        for model in sorted(p for p in self._path.glob(f"*{MODEL_SUFFIX}") if not p.name.startswith(".")):
            encoding = model.with_suffix(ENCODING_SUFFIX)
            if not encoding.is_file():
                raise DatasetError(f"{model}: its encoding description {encoding.name} is missing; rerun the export")
            try:
                description = json.loads(encoding.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DatasetError(f"{encoding}: cannot be read as JSON ({exc}); rerun the export") from exc
            models[model.stem] = {"onnx": model.read_bytes(), "encoding": description}
        if not models:
            raise DatasetError(f"{self._path}: no {MODEL_SUFFIX} file")
        return models

    def save(self, data: dict[str, dict[str, Any]]) -> None:
        if self._path.exists() and not self._path.is_dir():
            raise DatasetError(f"{self._path} exists and is not a folder")
        for name, entry in data.items():
            if not _NAME.match(name):
                raise DatasetError(f"{self._path}: {name!r} cannot be a file name (letters, digits, '_', '.', '-')")
            if not isinstance(entry.get("onnx"), (bytes, bytearray)) or not isinstance(entry.get("encoding"), dict):
                raise DatasetError(f"{self._path}: entry {name!r} needs 'onnx' (bytes) and 'encoding' (dict)")

        def write(tmp: Path) -> None:
            tmp.mkdir(parents=True)
            for name, entry in data.items():
                (tmp / f"{name}{MODEL_SUFFIX}").write_bytes(bytes(entry["onnx"]))
                (tmp / f"{name}{ENCODING_SUFFIX}").write_text(json.dumps(entry["encoding"], indent=2))

        atomic_write(self._path, write)

    def _exists(self) -> bool:
        restore_interrupted_swap(self._path)
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
