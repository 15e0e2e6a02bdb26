"""The split gate: train / validation / test checked after the split (engine tables, a batch at a time).

GX validates pandas batches, so each split's label and time columns are read from the engine in batches
of at most ``batch_rows`` rows and the batch reports combined; what a batch cannot decide (row counts,
the boundaries between splits, the distinct labels) comes from engine aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.data.validation.gx_import import ExpectationSuite, gx  # GX without PySpark
from ccss_pipeline.data.validation.gx_run import collect_results, engine_batches, gx_context, run_suites
from ccss_pipeline.data.validation.report import (
    ExpectationOutcome,
    Failure,
    TableStats,
    ValidationReport,
    combine_reports,
)
from ccss_pipeline.data.validation.rules import (
    RULE_BOTH_CLASSES,
    RULE_EXISTS,
    RULE_LABEL_NOT_NULL,
    RULE_LABEL_SET,
    RULE_SPLIT_NOT_EMPTY,
    RULE_TIME_ORDER,
)
from ccss_pipeline.data.validation.suites import tagged

TITLE = "Split validation"


@dataclass(frozen=True)
class SplitFacts:
    """One split's engine aggregates: its rows and its first and last time (None when absent)."""

    rows: int
    first: Any
    last: Any


@dataclass(frozen=True)
class Boundary:
    """A later split's time order: every time ``>=`` (``>`` without ties) the earlier split's last time."""

    early: str
    last_time: Any
    allow_ties: bool


def _split_facts(table: Any, time_col: str | None) -> SplitFacts:
    """Rows, min time, max time of one split, as engine aggregates (times None when absent)."""
    has_time = bool(time_col) and time_col in table.columns
    facts = (
        table.aggregate(
            n=table.count(), **({"lo": table[time_col].min(), "hi": table[time_col].max()} if has_time else {})
        )
        .to_pandas()
        .iloc[0]
    )
    lo, hi = facts.get("lo"), facts.get("hi")
    return SplitFacts(
        int(facts["n"]), None if lo is None or pd.isna(lo) else lo, None if hi is None or pd.isna(hi) else hi
    )


def _plain(value: Any) -> Any:
    """A time bound GX can hold in its (JSON) expectation config: numbers as Python numbers, datetimes
    as ISO text, which GX compares with the column's datetimes."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _boundaries(facts: Mapping[str, SplitFacts], allow_ties: bool) -> dict[str, Boundary]:
    """Late split -> its boundary, for each consecutive pair of non-empty splits (none against an empty one)."""
    out: dict[str, Boundary] = {}
    for early, late in (("train", "validation"), ("validation", "test")):
        if facts[early].rows and facts[late].rows and facts[early].last is not None:
            out[late] = Boundary(early, facts[early].last, allow_ties)
    return out


def _time_order(name: str, time_col: str, boundary: Boundary, first: Any) -> Any:
    """GX's "time order (no leakage)" of split ``name``: every time after the earlier split's last."""
    early, last, ties = boundary.early, boundary.last_time, boundary.allow_ties
    return tagged(
        gx.expectations.ExpectColumnValuesToBeBetween,
        f"{RULE_TIME_ORDER}: max({early}) {'<=' if ties else '<'} min({name})",
        time_col,
        column=time_col,
        min_value=_plain(last),
        strict_min=not ties,
        meta={
            "detail": f"max({early})={last}, min({name})={first}: {name} rows "
            f"{'before' if ties else 'at or before'} the end of {early}",
            "observed": {f"max_{early}": _plain(last), f"min_{name}": _plain(first)},
        },
    )


def _split_suite(
    name: str, columns: list[str], label_col: str, time_col: str | None, boundary: Boundary | None, first: Any
) -> ExpectationSuite:
    """The row rules of one split: label and time present, label not null and in {0, 1}, time order."""
    E = gx.expectations
    suite = ExpectationSuite(name=f"ccss_split_{name}")
    suite.add_expectation(tagged(E.ExpectColumnToExist, RULE_EXISTS, label_col, column=label_col))
    if time_col:
        suite.add_expectation(tagged(E.ExpectColumnToExist, RULE_EXISTS, time_col, column=time_col))
    if label_col in columns:
        suite.add_expectation(tagged(E.ExpectColumnValuesToNotBeNull, RULE_LABEL_NOT_NULL, label_col, column=label_col))
        suite.add_expectation(
            tagged(E.ExpectColumnValuesToBeInSet, RULE_LABEL_SET, label_col, column=label_col, value_set=[0, 1])
        )
    if boundary is not None and time_col:
        suite.add_expectation(_time_order(name, time_col, boundary, first))
    return suite


def _both_classes(
    dataset: str, name: str, table: Any, label_col: str, max_examples: int, summary: ValidationReport
) -> None:
    """GX "both classes present" on the split's distinct labels (a handful of rows)."""
    distinct = table.select(label_col).distinct().to_pandas()
    classes = ExpectationSuite(name=f"ccss_split_{name}_classes")
    classes.add_expectation(
        tagged(
            gx.expectations.ExpectColumnDistinctValuesToContainSet,
            RULE_BOTH_CLASSES,
            label_col,
            column=label_col,
            value_set=[0, 1],
        )
    )
    for table_name, res in run_suites([(name, distinct, classes)], max_examples).items():
        collect_results(dataset, table_name, distinct, res, max_examples, summary)


def _split_summary(
    dataset: str, name: str, table: Any, rows: int, label_col: str, max_examples: int, summary: ValidationReport
) -> None:
    """The split's size (an engine aggregate: not empty) and, when it has rows, both classes."""
    summary.tables[name] = TableStats(dataset=dataset, table=name, rows=rows, columns=len(table.columns))
    summary.outcomes.append(
        ExpectationOutcome(dataset, name, None, RULE_SPLIT_NOT_EMPTY, "engine:row_count", rows >= 1, None, rows)
    )
    if rows < 1:
        summary.failures.append(Failure(dataset, name, None, RULE_SPLIT_NOT_EMPTY, detail="0 rows"))
    elif label_col in table.columns:
        _both_classes(dataset, name, table, label_col, max_examples, summary)


def _batch_reports(
    dataset: str, name: str, table: Any, suite: ExpectationSuite, columns: list[str], batch_rows: int, max_examples: int
) -> list[ValidationReport]:
    """One report per batch of the split's ``columns`` (combined by the caller)."""
    reports = []
    for batch in engine_batches(table, columns, batch_rows):
        part = ValidationReport(success=True, title=TITLE)
        for table_name, res in run_suites([(name, batch, suite)], max_examples).items():
            collect_results(dataset, table_name, batch, res, max_examples, part)
        reports.append(part)
    return reports


def validate_split_tables(
    tables: Mapping[str, Any],
    label_col: str,
    time_col: str | None,
    origins: Mapping[str, str] | None = None,
    *,
    allow_ties: bool = True,
    max_offending_values: int = 5,
    check_order: bool = True,
    batch_rows: int = 1_000_000,
) -> ValidationReport:
    """Checks after the split (``train``, ``validation``, ``test``; engine tables), with memory bounded
    by ``batch_rows``, all reported as :class:`Failure` s.

    GX, a batch at a time and combined: label present / not null / in {0, 1}, and the time order —
    every ``validation`` time ``>= max(train time)`` and every ``test`` time ``>= max(validation time)``
    (``ExpectColumnValuesToBeBetween`` with that minimum; ties at a boundary are allowed unless
    ``allow_ties=False``, then strict). GX on each split's distinct labels: both classes present (train
    needs them to learn; validation and test to compute AUC and log loss). Engine aggregates: the row
    count (every split non-empty) and the boundaries. Ordering is not checked against an empty split,
    nor at all with ``check_order=False`` (random and column splits are not ordered in time).
    """
    origins = dict(origins or {})
    gx_context()
    facts = {name: _split_facts(table, time_col) for name, table in tables.items()}
    boundaries = _boundaries(facts, allow_ties) if time_col and check_order else {}
    columns = [label_col, *([time_col] if time_col else [])]
    reports: list[ValidationReport] = []
    summary = ValidationReport(success=True, title=TITLE)
    for name, table in tables.items():
        dataset = origins.get(name, name)
        suite = _split_suite(name, list(table.columns), label_col, time_col, boundaries.get(name), facts[name].first)
        reports += _batch_reports(dataset, name, table, suite, columns, batch_rows, max_offending_values)
        _split_summary(dataset, name, table, facts[name].rows, label_col, max_offending_values, summary)
    report = combine_reports([*reports, summary], TITLE, max_offending_values)
    report.tables = summary.tables
    report.success = not report.failures
    return report
