"""Validation nodes: run the Great Expectations suites, save the report, then gate.

The report is a node output of its own so Kedro saves it whether the data pass or not; the gate node
that follows raises with every failed expectation listed, before any downstream dataset is written.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig, ValidationConfig
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.sources import origin_of
from ccss_pipeline.data.validation.report import ValidationReport, raise_if_failed
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN


def gate(report: ValidationReport) -> None:
    """Stop the run when the saved report failed: :class:`DataValidationError` lists dataset, column,
    rule, count and examples of every failure."""
    raise_if_failed(report)


def validate_raw_source(
    raw_source: dict[str, Any], schema: SchemaConfig, data_validation: ValidationConfig
) -> ValidationReport:
    """Validate the log and each side table with its own expectation suite."""
    if _on_engine(raw_source):  # read by the engine: every row, a batch at a time
        from ccss_pipeline.data.validation.table_gate import validate_source_tables

        origins = dict(getattr(raw_source, "origins", {}))
        return validate_source_tables(
            raw_source, origins, schema, data_validation, batch_rows=data_validation.batch_rows
        )
    from ccss_pipeline.data.validation import validate_source  # GX takes ~8 s to import: only when used

    origins = {name: origin_of(frame, name) for name, frame in raw_source.items()}
    return validate_source(raw_source, origins, schema, data_validation)


def gate_and_join(raw_source: dict[str, Any], raw_validation_report: ValidationReport, schema: SchemaConfig) -> Any:
    """Stop the run if the raw data failed; otherwise join it into the canonical interaction table
    (an engine table when the source was read by the engine, a frame when it is in memory)."""
    gate(raw_validation_report)
    if _on_engine(raw_source):
        from ccss_pipeline.data.relational.interactions import build_interactions as on_engine

        return on_engine(raw_source, schema)
    return build_interactions(raw_source, schema)


def _on_engine(raw_source: dict[str, Any]) -> bool:
    """True when the source's tables are engine tables (Ibis), not in-memory frames."""
    return not any(isinstance(t, pd.DataFrame) for t in raw_source.values())


def validate_split(train: Any, validation: Any, test: Any, features: FeatureConfig | None = None) -> ValidationReport:
    """No empty split, labels in {0, 1} and both classes in every split; train < validation < test in
    ``event_ts`` for the ``time`` and ``row_order`` splits (``event_ts`` is the row number in the latter),
    not for ``random`` and ``column`` splits, which are not ordered (``features`` absent: a time split).

    The splits are engine tables (the frame form is accepted too); GX reads them a batch at a time.
    """
    import ibis

    from ccss_pipeline.data.validation import validate_split_tables  # GX takes ~8 s to import: only when used

    mode = (features or FeatureConfig()).split.mode
    splits = {"train": train, "validation": validation, "test": test}
    tables = {s: ibis.memtable(t) if isinstance(t, pd.DataFrame) else t for s, t in splits.items()}
    origins = {s: f"data/03_primary/{s}_interactions.parquet" for s in splits}
    return validate_split_tables(
        tables, LABEL_COLUMN, TIME_COLUMN, origins, allow_ties=False, check_order=mode in ("time", "row_order")
    )


def extract_source_truth(raw_source: dict[str, Any], raw_validation_report: ValidationReport) -> dict[str, Any]:
    """The generator's true directions where the source knows them (synthetic), else an empty record.

    Gated like the join: it reads the raw source, so it is downstream of the gate, and a failed gate
    must leave only its report — not a ``source_truth.json`` describing data that were refused."""
    gate(raw_validation_report)
    directions = raw_source.get("directions")
    if directions is None:
        return {"directions": {}}
    if not isinstance(directions, pd.DataFrame):  # an engine table: a handful of rows
        directions = directions.to_pandas()
    return {"directions": {str(f): int(d) for f, d in zip(directions["feature"], directions["direction"], strict=True)}}
