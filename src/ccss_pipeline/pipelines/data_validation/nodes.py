"""Validation nodes: run the Great Expectations suites, save the report, then gate.

The report is a node output of its own so Kedro saves it whether the data pass or not; the gate node
that follows raises with every failed expectation listed, before any downstream dataset is written.
The gate itself is the library's (:mod:`ccss_pipeline.data.validation.stages`); these nodes only wire it.
"""

from __future__ import annotations

from typing import Any

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.validation import stages
from ccss_pipeline.data.validation.report import ValidationReport, raise_if_failed
from ccss_pipeline.data.validation.stages import validate_split as validate_split  # a node as it is


def gate(report: ValidationReport) -> None:
    """Stop the run when the saved report failed: :class:`DataValidationError` lists dataset, column,
    rule, count and examples of every failure."""
    raise_if_failed(report)


def validate_raw_source(
    raw_source: dict[str, Any], schema: SchemaConfig, data_validation: ValidationConfig
) -> ValidationReport:
    """Validate the log and each side table with its own expectation suite."""
    return stages.validate_raw_source(raw_source, schema, data_validation)


def gate_and_join(raw_source: dict[str, Any], raw_validation_report: ValidationReport, schema: SchemaConfig) -> Any:
    """Stop the run if the raw data failed; otherwise join it into the canonical interaction table
    (an engine table when the source was read by the engine, a frame when it is in memory)."""
    gate(raw_validation_report)
    if stages.is_engine_source(raw_source):
        from ccss_pipeline.data.relational.interactions import build_interactions as on_engine

        return on_engine(raw_source, schema)
    return build_interactions(raw_source, schema)


def extract_source_truth(raw_source: dict[str, Any], raw_validation_report: ValidationReport) -> dict[str, Any]:
    """The generator's true directions where the source knows them (synthetic), else an empty record.

    Gated like the join: it reads the raw source, so it is downstream of the gate, and a failed gate
    must leave only its report — not a ``source_truth.json`` describing data that were refused."""
    gate(raw_validation_report)
    directions = raw_source.get("directions")
    if directions is None:
        return {"directions": {}}
    if stages.is_engine_source(raw_source):  # an engine table: a handful of rows
        directions = directions.to_pandas()
    return {"directions": {str(f): int(d) for f, d in zip(directions["feature"], directions["direction"], strict=True)}}
