"""The feature specification: the contract between feature engineering, training and evaluation.

Feature engineering fits it on the training split and writes it as JSON; every later stage reads it
back instead of re-deriving column names, bucket boundaries or directions, so a moved value, its
dense value and its bucket id can never disagree between stages.

Model-ready tables (one parquet per split) hold, per row:
  - ``label`` (int8), ``group_id`` (the user, for GAUC), ``event_ts`` (ms), optionally ``oracle_prob``;
  - per categorical feature ``c``: ``cat__c`` (int64, 0 = out of vocabulary);
  - per numerical feature ``n``: ``num__n`` (float32, transformed and standardized) and ``bkt__n``
    (int64 bucket id in ``[0, n_buckets)``, ``n_buckets`` itself = the missing-value bucket).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ccss_pipeline.fingerprint import array_hash, content_hash

LABEL_COLUMN = "label"
GROUP_COLUMN = "group_id"
TIME_COLUMN = "event_ts"
ORACLE_COLUMN = "oracle_prob"
#: Each row's split (``schema.split_column``); dropped by the split, never a model feature.
SPLIT_COLUMN = "split"
SPEC_VERSION = 3
#: Levels of the training-quantile sketch each numerical feature carries (0, 0.001, ..., 1).
QUANTILE_LEVELS = 1001


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input: an embedding table of ``vocab_size`` rows (row 0 = out of vocabulary)."""

    name: str
    vocab_size: int
    vocabulary: list[str] = field(default_factory=list)

    @property
    def column(self) -> str:
        return f"cat__{self.name}"


@dataclass(frozen=True)
class NumericalFeature:
    """A numerical input fed twice (spec §2): dense transformed value and bucket embedding.

    ``boundaries`` are the inner quantile edges in raw units (``len = n_buckets - 1``); ``centres`` the
    median raw training value per bucket; ``centres_dense`` the same centres after the transform, which
    is what the model sees when a value is moved to a bucket centre. Bucket ``n_buckets`` is reserved
    for missing values (dense value 0). ``quantiles`` is a sketch of the training raw values at
    :data:`QUANTILE_LEVELS` equally spaced levels (0 = minimum, last = maximum): the raw-value grids of
    the evaluation and the within-bucket counterfactual draws read it instead of the training table.

    ``support``: the sorted distinct training values of a **discrete** feature (a count, a number of
    days, a rating: at most ``feature_engineering.discrete_max_values`` distinct values), empty for a
    continuous one. Interpolated quantiles of such a feature land on values no row can take (0.849 for a
    count) and skip most steps a person can make, so the raw grid, the edge test and the stratified
    counterfactual anchors use the observed values instead. ``bucket_counts``: training rows per bucket,
    so a report can say which edges had too few rows beside them to be learned.
    """

    name: str
    direction: int  # +1, -1, or 0 for "no direction"
    transform: str  # "log1p" or "identity"
    mean: float
    std: float
    boundaries: list[float]
    centres: list[float]
    centres_dense: list[float]
    quantiles: list[float] = field(default_factory=list)
    support: list[float] = field(default_factory=list)
    bucket_counts: list[int] = field(default_factory=list)

    @property
    def n_buckets(self) -> int:
        return len(self.centres)

    @property
    def is_discrete(self) -> bool:
        """Few distinct training values: measured and moved on the values users can set."""
        return bool(self.support)

    @property
    def missing_bucket(self) -> int:
        return self.n_buckets

    @property
    def dense_column(self) -> str:
        return f"num__{self.name}"

    @property
    def bucket_column(self) -> str:
        return f"bkt__{self.name}"


@dataclass(frozen=True)
class FeatureSpec:
    """All inputs of the model, in the order the model consumes them."""

    categorical: list[CategoricalFeature]
    numerical: list[NumericalFeature]
    has_oracle: bool = False
    source: str = ""
    version: int = SPEC_VERSION
    label_name: str = "label"  # the schema's label column: plots and the report name it
    has_user: bool = True  # False when the schema declares no user id (no GAUC)
    has_item: bool = True
    # the fingerprint of the training log the spec was fitted beside (``data.history``): scoring reads
    # that log's history for its log features and refuses another one; None in specs fitted without it
    history: str | None = None

    @property
    def directed(self) -> list[NumericalFeature]:
        """Numerical features with a declared direction — the ones CCSS constrains."""
        return [f for f in self.numerical if f.direction != 0]

    def directed_indices(self) -> list[int]:
        """Positions (within ``numerical``) of the directed features."""
        return [i for i, f in enumerate(self.numerical) if f.direction != 0]

    @property
    def fingerprint(self) -> str:
        """Content hash of the spec: artifacts built from it record it (``ccss_pipeline.lineage``). The
        history stamp is left out: it changes no row's encoding, and specs fitted before it keep their
        fingerprint (their tables and models stay valid)."""
        return content_hash({k: v for k, v in self.to_dict().items() if k != "history"})

    def to_dict(self) -> dict[str, Any]:
        history = {} if self.history is None else {"history": self.history}
        return history | {
            "version": self.version,
            "source": self.source,
            "has_oracle": self.has_oracle,
            "label_name": self.label_name,
            "has_user": self.has_user,
            "has_item": self.has_item,
            "label": LABEL_COLUMN,
            "group": GROUP_COLUMN,
            "categorical": [asdict(c) | {"column": c.column} for c in self.categorical],
            "numerical": [
                asdict(n)
                | {
                    "dense_column": n.dense_column,
                    "bucket_column": n.bucket_column,
                    "n_buckets": n.n_buckets,
                    "missing_bucket": n.missing_bucket,
                }
                for n in self.numerical
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        if data.get("version") != SPEC_VERSION:
            raise ValueError(
                f"feature spec version {data.get('version')!r} is not supported (expected {SPEC_VERSION}); "
                "rebuild it with `kedro run --pipelines=feature_engineering`"
            )
        cat_fields = {"name", "vocab_size", "vocabulary"}
        num_fields = {
            "name",
            "direction",
            "transform",
            "mean",
            "std",
            "boundaries",
            "centres",
            "centres_dense",
            "quantiles",
            "support",
            "bucket_counts",
        }
        return cls(
            categorical=[
                CategoricalFeature(**{k: v for k, v in c.items() if k in cat_fields}) for c in data["categorical"]
            ],
            numerical=[NumericalFeature(**{k: v for k, v in n.items() if k in num_fields}) for n in data["numerical"]],
            has_oracle=bool(data.get("has_oracle", False)),
            source=str(data.get("source", "")),
            label_name=str(data.get("label_name", "label")),
            has_user=bool(data.get("has_user", True)),
            has_item=bool(data.get("has_item", True)),
            history=None if data.get("history") is None else str(data["history"]),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))


class RowSample(Protocol):
    """What sampling code needs of a split: its length and any rows by index — :class:`ModelInputs` in
    memory, or ``ParquetModelInput`` streamed from parquet (which reads only the row groups it needs)."""

    def __len__(self) -> int: ...

    def take(self, index: np.ndarray | slice) -> ModelInputs: ...


@dataclass
class ModelInputs:
    """Column-stacked arrays of one split, as every model and metric consumes them.

    ``cat``: (N, M) int64; ``dense``: (N, K) float32; ``bucket``: (N, K) int64; ``label``: (N,) float32;
    ``group``: (N,) user ids; ``oracle``: (N,) true click probability or None.
    """

    cat: np.ndarray
    dense: np.ndarray
    bucket: np.ndarray
    label: np.ndarray
    group: np.ndarray
    oracle: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def digest(self) -> str:
        """A short content hash of every array: resumable state (studies, checkpoints) is keyed by it."""
        return array_hash((self.cat, self.dense, self.bucket, self.label))

    def take(self, index: np.ndarray | slice) -> ModelInputs:
        """Rows ``index`` of every array (a copy; views for a slice)."""
        return ModelInputs(
            cat=self.cat[index],
            dense=self.dense[index],
            bucket=self.bucket[index],
            label=self.label[index],
            group=self.group[index],
            oracle=None if self.oracle is None else self.oracle[index],
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, spec: FeatureSpec) -> ModelInputs:
        """Stack a model-ready table's columns in the spec's order; fails naming a missing column."""
        needed = (
            [LABEL_COLUMN, GROUP_COLUMN]
            + [c.column for c in spec.categorical]
            + [n.dense_column for n in spec.numerical]
            + [n.bucket_column for n in spec.numerical]
        )
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise KeyError(f"model-ready table lacks columns required by the feature spec: {missing}")
        n = len(frame)
        cat = (
            frame[[c.column for c in spec.categorical]].to_numpy(np.int64)
            if spec.categorical
            else np.zeros((n, 0), np.int64)
        )
        dense = frame[[f.dense_column for f in spec.numerical]].to_numpy(np.float32)
        bucket = frame[[f.bucket_column for f in spec.numerical]].to_numpy(np.int64)
        oracle = frame[ORACLE_COLUMN].to_numpy(np.float64) if ORACLE_COLUMN in frame.columns else None
        return cls(
            cat=np.ascontiguousarray(cat),
            dense=np.ascontiguousarray(dense),
            bucket=np.ascontiguousarray(bucket),
            label=frame[LABEL_COLUMN].to_numpy(np.float32),
            group=frame[GROUP_COLUMN].to_numpy(),
            oracle=oracle,
        )
