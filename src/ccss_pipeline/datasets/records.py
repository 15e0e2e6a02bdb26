"""JSON files the catalog hands to nodes as domain objects, not dicts.

``feature_spec.json`` loads as a :class:`~ccss_pipeline.spec.FeatureSpec`, ``best_params.json`` as
``{backbone: ChosenParams}`` and a validation gate's report as one
:class:`~ccss_pipeline.data.validation.report.ValidationReport` (saved as JSON and Markdown), so a node
never rebuilds them by hand and a malformed file fails once, here, naming the file. Both are written atomically (a temporary sibling renamed over the target) in
the layout ``kedro_datasets.json.JSONDataset`` wrote before them (``indent=2``), so DVC sees the same
bytes for the same content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from pydantic import ValidationError

from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.files import atomic_write
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.importance import FeatureImportance
from ccss_pipeline.spec import FeatureSpec


def _read_json(path: Path, rebuild: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: not found (run `kedro run --pipelines={rebuild}` first)")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read as JSON ({exc}); rerun `{rebuild}`") from exc


def _problems(exc: ValidationError) -> str:
    """pydantic's errors as ``field: message; ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors())


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2)))


class FeatureSpecDataset(AbstractDataset[FeatureSpec, FeatureSpec]):
    """The fitted transformer (``feature_spec.json``) as a :class:`FeatureSpec`."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        self.metadata = metadata

    def load(self) -> FeatureSpec:
        data = _read_json(self._path, "feature_engineering")
        try:
            return FeatureSpec.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{self._path}: not a feature spec ({type(exc).__name__}: {exc})") from exc

    def save(self, data: FeatureSpec) -> None:
        _write_json(self._path, data.to_dict())

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}


class FeatureImportanceDataset(AbstractDataset[FeatureImportance, FeatureImportance]):
    """The Shapley importances and draw probabilities (``feature_importance.json``) as one record."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        self.metadata = metadata

    def load(self) -> FeatureImportance:
        data = _read_json(self._path, "counterfactual_pairs")
        try:
            return FeatureImportance.model_validate(data)
        except ValidationError as exc:
            raise DatasetError(f"{self._path}: not the feature importances ({_problems(exc)})") from exc

    def save(self, data: FeatureImportance) -> None:
        _write_json(self._path, data.model_dump())

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}


class ChosenParamsDataset(AbstractDataset[Mapping[str, ChosenParams], dict[str, ChosenParams]]):
    """The search's choice per backbone (``best_params.json``) as ``{backbone: ChosenParams}``."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, ChosenParams]:
        data = _read_json(self._path, "model_training")
        if not isinstance(data, dict):
            raise DatasetError(f"{self._path}: expected an object of backbones, found {type(data).__name__}")
        chosen = {}
        for backbone, entry in data.items():
            try:
                chosen[backbone] = ChosenParams.model_validate(entry)
            except ValidationError as exc:
                raise DatasetError(
                    f"{self._path}: {backbone!r} is not the search's chosen parameters ({_problems(exc)}); "
                    "rerun `kedro run --pipelines=model_training`"
                ) from exc
        return chosen

    def save(self, data: Mapping[str, ChosenParams]) -> None:
        _write_json(self._path, {backbone: params.model_dump() for backbone, params in data.items()})

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}


class ValidationReportDataset(AbstractDataset[ValidationReport, ValidationReport]):
    """A gate's report: ``filepath`` (``<name>.json``, what the next stage gates on) and its Markdown
    sibling ``<name>.md`` (for people), both written from the one report (Markdown first, so the JSON
    never describes a report whose Markdown is missing); loads the JSON back as a :class:`ValidationReport`."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        if self._path.suffix != ".json":
            raise DatasetError(f"ValidationReportDataset: filepath {filepath!r} must end in .json")
        self._markdown = self._path.with_suffix(".md")
        self.metadata = metadata

    def load(self) -> ValidationReport:
        data = _read_json(self._path, "data_validation")
        try:
            return ValidationReport.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{self._path}: not a validation report ({type(exc).__name__}: {exc})") from exc

    def save(self, data: ValidationReport) -> None:
        atomic_write(self._markdown, lambda tmp: tmp.write_text(data.to_markdown()))
        _write_json(self._path, data.to_dict())

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path), "markdown": str(self._markdown)}
