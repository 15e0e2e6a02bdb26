"""Kedro datasets of the project: raw-source readers and an atomic-write wrapper.

Thin adapters: the reading and generating code lives in :mod:`ccss_pipeline.data.sources`, which works
without Kedro.
"""

from ccss_pipeline.datasets.atomic import AtomicDataset, ParquetChunksDataset
from ccss_pipeline.datasets.folders import PngFolderDataset, ProjectFolderDataset
from ccss_pipeline.datasets.lineage import ProjectLineageDataset
from ccss_pipeline.datasets.models import ModelCollectionDataset
from ccss_pipeline.datasets.records import (
    ChosenParamsDataset,
    FeatureImportanceDataset,
    FeatureSpecDataset,
    ValidationReportDataset,
)
from ccss_pipeline.datasets.sources import (
    EngineSourceDataset,
    KuaiRandSourceDataset,
    SyntheticSourceDataset,
    TableSourceDataset,
)
from ccss_pipeline.datasets.study_storage import StudyStorageDataset
from ccss_pipeline.datasets.tables import EngineTableDataset

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
