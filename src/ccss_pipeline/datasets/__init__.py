"""Kedro datasets of the project: raw-source readers and an atomic-write wrapper.

Thin adapters: the reading and generating code lives in :mod:`ccss_pipeline.data.sources`, which works
without Kedro.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each dataset lives. Loaded on first use (PEP 562): Kedro's catalog imports the package to find
#: the classes a run's datasets name, and the model datasets pull in PyTorch (~2 s), which the data
#: stages never need.
_HOME = {
    "AtomicDataset": "atomic",
    "ParquetChunksDataset": "atomic",
    "PngFolderDataset": "folders",
    "ProjectFolderDataset": "folders",
    "ProjectLineageDataset": "lineage",
    "ModelCollectionDataset": "models",
    "ChosenParamsDataset": "records",
    "FeatureImportanceDataset": "records",
    "FeatureSpecDataset": "records",
    "ValidationReportDataset": "records",
    "EngineSourceDataset": "sources",
    "KuaiRandSourceDataset": "sources",
    "SyntheticSourceDataset": "sources",
    "TableSourceDataset": "sources",
    "StudyStorageDataset": "study_storage",
    "EngineTableDataset": "tables",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AtomicDataset",
    "ChosenParamsDataset",
    "EngineSourceDataset",
    "EngineTableDataset",
    "FeatureImportanceDataset",
    "FeatureSpecDataset",
    "ParquetChunksDataset",
    "ModelCollectionDataset",
    "PngFolderDataset",
    "ProjectFolderDataset",
    "ProjectLineageDataset",
    "KuaiRandSourceDataset",
    "StudyStorageDataset",
    "SyntheticSourceDataset",
    "TableSourceDataset",
    "ValidationReportDataset",
]
