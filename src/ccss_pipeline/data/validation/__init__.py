"""The data-validation gate: Great Expectations 1.x suites of the raw tables and of the split.

Modules: ``rules`` (rule names), ``report`` (failures, reports, the error), ``suites`` (one GX suite per
table, as code), ``gx_run`` (GX's lifecycle and result parsing), ``gates`` (validate a source, a split),
``table_gate`` (the same gate on engine tables, a batch at a time), ``split_gate`` (the split's checks),
``stages`` (what the pipeline's nodes call: the one place that picks ``gates`` or ``table_gate``, and
why both exist), ``gx_import`` (GX itself, imported without PySpark unless the Spark engine runs: every
module takes GX from there).

A raw source is a dict of pandas DataFrames: ``"log"`` (one row per impression) and optional side tables
named in ``schema.side_tables``. Each table has a human-readable origin (the file it came from) so that
every error names the file to fix.

Public API
----------
- :func:`build_table_suite` — the GX ``ExpectationSuite`` of one raw table (suites as code).
- :func:`validate_source` — runs every table's suite, plus the checks of each side table's join key
  against the log, and returns a :class:`ValidationReport`.
- :func:`validate_split_tables` — checks of the train / validation / test split (engine tables).
- :func:`validate_raw_source` / :func:`validate_split` — the raw and split gates as the stages call them.
- :func:`raise_if_failed` — raises :class:`DataValidationError` with ONE message listing every failure.

Notes on GX 1.x behaviour relied upon here
------------------------------------------
- ``ExpectColumnValuesToBeBetween`` ignores missing values: NaN passes it. NaN is therefore caught by a
  separate ``ExpectColumnValuesToNotBeNull`` ("values finite (no NaN)"), while ±inf is caught by a between
  with the finite float bounds ``±numpy.finfo(float).max`` ("values finite (no ±inf)").
- An expectation on a missing column *errors* (``exception_info`` set, ``success`` False, empty
  ``result``) instead of failing. Suites here only add column-level expectations for columns present in
  the frame and an ``ExpectColumnToExist`` for the others; an errored result is still reported as a
  failure ("column exists" when the column is absent, the GX error message otherwise), never a crash.
- Timestamps are validated on a derived column ``<timestamp>__epoch_ms`` (float milliseconds since the
  epoch, NaN where unparseable) added by :func:`prepare_table` before validation, parsed by
  :func:`ccss_pipeline.data.timestamps.epoch_ms` — the parser the join uses too (``datetime`` values must be
  ISO 8601, or match ``schema.timestamp_format`` when it is set). Not-null on it means "timestamp
  parseable", a between with ``cfg.timestamp_min`` / ``cfg.timestamp_max`` converted to epoch milliseconds
  means "timestamp in range", and "no duplicated impressions" compares (user, item, derived timestamp), so
  one instant written two ways is still a duplicate. Offending examples are read back from the raw
  column(s) through GX's ``partial_unexpected_index_list``; a numeric timestamp out of range is shown
  with its ISO date (``report.DatedTimestamp``).
- Every schema categorical and numerical column must hold at least one value ("not entirely null",
  ``ExpectColumnUniqueValueCountToBeBetween(min_value=1)``), checked in the table the join takes it from.
- Side-table joins: the log must hold each present side table's key ("column exists"); the key must be
  numbers in both tables or strings in both ("join key types match", pandas: the join would crash);
  and the share of log rows whose key is found in the side table ("key found in side table") is
  validated on a derived boolean column ``<key>__in_<table>`` of the log with
  ``ExpectColumnValuesToBeInSet([True], mostly=cfg.min_key_coverage)``: rows not found get NaN from the
  left join. A side table the join takes no schema column from is measured (reported) but not gated.
- Split ordering: ``max(train time) <= min(validation time)`` and ``max(validation time) <= min(test
  time)``. Ties at a boundary are allowed by default (events with the same timestamp are simultaneous, not
  future information, and a split by event order may put them on either side); ``allow_ties=False``
  demands strict ``<``. Every non-empty split must hold both classes (AUC and log loss need them).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ["GX_ANALYTICS_ENABLED"] = "False"  # before great_expectations is first imported

#: Where each public name lives. Loaded on first use (PEP 562): GX takes seconds to import, and the
#: report and its error (``report``) are needed by stages that never run an expectation.
_HOME = {
    **dict.fromkeys(
        [
            "key_coverage_detail",
            "key_types_detail",
            "missing_tables",
            "validate_source",
        ],
        "gates",
    ),
    "validate_split_tables": "split_gate",
    **dict.fromkeys(["is_engine_source", "validate_raw_source", "validate_split"], "stages"),
    **dict.fromkeys(
        [
            "DataValidationError",
            "ExpectationOutcome",
            "Failure",
            "TableStats",
            "ValidationReport",
            "combine_reports",
            "raise_if_failed",
        ],
        "report",
    ),
    **dict.fromkeys(["build_table_suite", "key_coverage_column", "prepare_table", "timestamp_epoch_column"], "suites"),
}


def __getattr__(name: str) -> Any:
    if name.startswith(("RULE_", "LOG_TABLE")):
        module = "rules"
    elif name in _HOME:
        module = _HOME[name]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DataValidationError",
    "ExpectationOutcome",
    "Failure",
    "LOG_TABLE",
    "RULE_BOTH_CLASSES",
    "RULE_COUNT",
    "RULE_DUP_IMPRESSIONS",
    "RULE_EXISTS",
    "RULE_FINITE_INF",
    "RULE_FINITE_NAN",
    "RULE_ID_NOT_NULL",
    "RULE_KEY_COVERAGE",
    "RULE_KEY_TYPES",
    "RULE_LABEL_NOT_NULL",
    "RULE_LABEL_SET",
    "RULE_NOT_ALL_NULL",
    "RULE_NUMERIC_DTYPE",
    "RULE_ROWS",
    "RULE_SPLIT_NOT_EMPTY",
    "RULE_TABLE_PRESENT",
    "RULE_TIME_ORDER",
    "RULE_TS_PARSEABLE",
    "RULE_TS_RANGE",
    "RULE_UNIQUE_KEY",
    "TableStats",
    "ValidationReport",
    "build_table_suite",
    "combine_reports",
    "is_engine_source",
    "key_coverage_column",
    "key_coverage_detail",
    "key_types_detail",
    "missing_tables",
    "prepare_table",
    "raise_if_failed",
    "timestamp_epoch_column",
    "validate_raw_source",
    "validate_source",
    "validate_split",
    "validate_split_tables",
]
