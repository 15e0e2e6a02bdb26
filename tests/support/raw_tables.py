"""Small raw tables and assertions on validation reports, shared by the gate tests."""

from __future__ import annotations

import pandas as pd
import pytest

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.data.validation import DataValidationError, Failure, ValidationReport, raise_if_failed

LOG_FILE = "data/01_raw/log.csv"
USERS_FILE = "data/01_raw/users.csv"
ORIGINS = {"log": LOG_FILE, "users": USERS_FILE}


def small_schema(**overrides) -> SchemaConfig:
    base = dict(
        source="table",
        label="click",
        user="user_id",
        item="item_id",
        timestamp="ts",
        timestamp_unit="ms",
        categorical=["degree"],
        numerical=[{"name": "price"}, {"name": "fans", "count": True}],
        side_tables={"users": {"key": "user_id"}},
    )
    base.update(overrides)
    return SchemaConfig(**base)


def clean_tables() -> dict[str, pd.DataFrame]:
    t0 = 1_650_000_000_000  # 2022-04-15 in ms
    log = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3, 3],
            "item_id": [10, 11, 10, 12, 11, 12],
            "click": [0, 1, 1, 0, 1, 0],
            "ts": [t0 + i * 1000 for i in range(6)],
            "price": [1.5, 2.0, 0.0, -1.0, 3.0, 2.5],
        }
    )
    users = pd.DataFrame({"user_id": [1, 2, 3], "fans": [0, 5, 10], "degree": ["a", "b", "a"]})
    return {"log": log, "users": users}


def only_failure(report: ValidationReport, rule: str, column: str | None = None) -> Failure:
    hits = [f for f in report.failures if f.rule == rule and (column is None or f.column == column)]
    assert len(hits) == 1, report.error_message()
    return hits[0]


def assert_message(report: ValidationReport, dataset: str, column: str, rule: str, count: int | None) -> None:
    assert not report.success
    lines = [ln for ln in report.error_message().splitlines() if rule in ln and f"'{column}'" in ln]
    assert lines, report.error_message()
    line = lines[0]
    assert dataset in line
    if count is not None:
        assert f"for {count} row(s)" in line
    with pytest.raises(DataValidationError) as err:
        raise_if_failed(report)
    assert line in str(err.value)


def split_frames():
    def frame(times, labels):
        return pd.DataFrame({"ts": times, "click": labels})

    return frame([1, 2, 3, 4], [0, 1, 0, 1]), frame([5, 6], [1, 0]), frame([7, 8], [0, 1])


SPLIT_ORIGINS = {"train": "train.parquet", "validation": "validation.parquet", "test": "test.parquet"}


def validate_splits(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    label_col: str,
    time_col: str | None,
    *args,
    **kwargs,
) -> ValidationReport:
    """The split gate on frames, as the split node runs it (each frame as an engine table)."""
    import ibis

    from ccss_pipeline.data.validation import validate_split_tables

    frames = {"train": train, "validation": validation, "test": test}
    tables = {name: ibis.memtable(frame) for name, frame in frames.items()}
    return validate_split_tables(tables, label_col, time_col, *args, **kwargs)


def validate_split_frames(
    train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, features: FeatureConfig | None = None
) -> ValidationReport:
    """The split node on frames: each frame enters as an in-memory engine table, as the catalog hands them."""
    from ccss_pipeline.data.relational.in_memory import in_memory
    from ccss_pipeline.data.validation.stages import validate_split

    return validate_split(in_memory(train), in_memory(validation), in_memory(test), features)
