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
from pathlib import Path
from typing import Any, Generic, TypeVar

from kedro.io import AbstractDataset, DatasetError
from pydantic import ValidationError

from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.files import atomic_write
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.importance import FeatureImportance
from ccss_pipeline.spec import FeatureSpec

T = TypeVar("T")


def _problems(exc: ValidationError) -> str:
    """pydantic's errors as ``field: message; ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors())


class _JsonRecordDataset(AbstractDataset[T, T], Generic[T]):
    """One JSON file holding one record: read, decoded (:meth:`_decode`), or encoded and written
    atomically. ``writer`` names the pipeline that writes it, for the error messages."""

    writer = "the pipeline that writes it"

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        self.metadata = metadata

    def _decode(self, data: Any) -> T:
        raise NotImplementedError

    def _encode(self, record: T) -> Any:
        raise NotImplementedError

    def load(self) -> T:
        if not self._path.is_file():
            raise DatasetError(f"{self._path}: not found (run `kedro run --pipelines={self.writer}` first)")
        try:
            data = json.loads(self._path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{self._path}: cannot be read as JSON ({exc}); rerun `{self.writer}`") from exc
        return self._decode(data)

    def save(self, data: T) -> None:
        text = json.dumps(self._encode(data), indent=2)
        atomic_write(self._path, lambda tmp: tmp.write_text(text))

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}


class FeatureSpecDataset(_JsonRecordDataset[FeatureSpec]):
    """The fitted transformer (``feature_spec.json``) as a :class:`FeatureSpec`."""

    writer = "feature_engineering"

    def _decode(self, data: Any) -> FeatureSpec:
        try:
            return FeatureSpec.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{self._path}: not a feature spec ({type(exc).__name__}: {exc})") from exc

    def _encode(self, record: FeatureSpec) -> Any:
        return record.to_dict()


class FeatureImportanceDataset(_JsonRecordDataset[FeatureImportance]):
    """The Shapley importances and draw probabilities (``feature_importance.json``) as one record."""

    writer = "counterfactual_pairs"

    def _decode(self, data: Any) -> FeatureImportance:
        try:
            return FeatureImportance.model_validate(data)
        except ValidationError as exc:
            raise DatasetError(f"{self._path}: not the feature importances ({_problems(exc)})") from exc

    def _encode(self, record: FeatureImportance) -> Any:
        return record.model_dump()


class ChosenParamsDataset(_JsonRecordDataset[dict[str, ChosenParams]]):
    """The search's choice per backbone (``best_params.json``) as ``{backbone: ChosenParams}``."""

    writer = "model_training"

    def _decode(self, data: Any) -> dict[str, ChosenParams]:
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

    def _encode(self, record: dict[str, ChosenParams]) -> Any:
        return {backbone: params.model_dump() for backbone, params in record.items()}


class ValidationReportDataset(_JsonRecordDataset[ValidationReport]):
    """A gate's report: ``filepath`` (``<name>.json``, what the next stage gates on) and its Markdown
    sibling ``<name>.md`` (for people), both written from the one report (Markdown first, so the JSON
    never describes a report whose Markdown is missing); loads the JSON back as a :class:`ValidationReport`."""

    writer = "data_validation"

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath, metadata)
        if self._path.suffix != ".json":
            raise DatasetError(f"ValidationReportDataset: filepath {filepath!r} must end in .json")

    def _decode(self, data: Any) -> ValidationReport:
        try:
            return ValidationReport.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{self._path}: not a validation report ({type(exc).__name__}: {exc})") from exc

    def _encode(self, record: ValidationReport) -> Any:
        return record.to_dict()

    def save(self, data: ValidationReport) -> None:
        atomic_write(self._path.with_suffix(".md"), lambda tmp: tmp.write_text(data.to_markdown()))
        super().save(data)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path), "markdown": str(self._path.with_suffix(".md"))}
