"""The gates: every rule of every raw table and of the split, run and reported at once."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.validation.gx_import import ExpectationSuite, gx  # GX without PySpark
from ccss_pipeline.data.validation.gx_run import _collect, _context, _run_suites
from ccss_pipeline.data.validation.report import (
    ExpectationOutcome,
    Failure,
    TableStats,
    ValidationReport,
    _distinct,
    combine_reports,
)
from ccss_pipeline.data.validation.rules import (
    LOG_TABLE,
    RULE_BOTH_CLASSES,
    RULE_EXISTS,
    RULE_KEY_COVERAGE,
    RULE_KEY_TYPES,
    RULE_LABEL_NOT_NULL,
    RULE_LABEL_SET,
    RULE_SPLIT_NOT_EMPTY,
    RULE_TABLE_PRESENT,
    RULE_TIME_ORDER,
)
from ccss_pipeline.data.validation.suites import (
    _E,
    _join_columns,
    build_table_suite,
    key_coverage_column,
    prepare_table,
)


def missing_tables(tables: Mapping[str, Any], origins: Mapping[str, str], schema: SchemaConfig) -> list[Failure]:
    """ "table present" failures: the log, or a required side table, not loaded."""
    return [
        Failure(
            dataset=origins.get(name, name), table=name, column=None, rule=RULE_TABLE_PRESENT, detail="table not loaded"
        )
        for name in [LOG_TABLE, *schema.side_tables]
        if name not in tables and (name == LOG_TABLE or schema.side_tables[name].required)
    ]


def key_types_detail(
    key: str, side_table: str, side_origin: str, kinds: tuple[Any, Any], types: tuple[Any, Any]
) -> str:
    """The "join key types match" message: what each table holds and why the join cannot work."""
    return (
        f"the log holds {kinds[0]} (dtype {types[0]}) but side table '{side_table}' ({side_origin}) holds "
        f"{kinds[1]} (dtype {types[1]}) in its key column '{key}': they can never match, so the join is "
        "impossible; write the key the same way in both files"
    )


def key_coverage_detail(key: str, side_table: str, side_origin: str, min_coverage: float, columns: list[str]) -> str:
    """The "key found in side table" message, with ``{coverage}`` standing for the measured share."""
    return (
        f"{{coverage}} of the log rows have a '{key}' found in side table '{side_table}' ({side_origin}), "
        f"below data_validation.min_key_coverage = {min_coverage:g}; the left join leaves "
        f"{', '.join(columns)} empty (NaN) for the others"
    )


def validate_source(
    tables: Mapping[str, pd.DataFrame],
    origins: Mapping[str, str],
    schema: SchemaConfig,
    cfg: ValidationConfig | None = None,
    *,
    label_required: bool = True,
    title: str = "Raw data validation",
) -> ValidationReport:
    """Run every raw table's suite (the log and the side tables of the schema) and report all failures.

    ``label_required=False`` validates rows to score: a log without the label column passes, one with
    it gets the label rules.

    Tables not named by the schema (neither ``"log"`` nor in ``schema.side_tables``) are ignored; a missing
    log or a missing *required* side table is a "table present" failure. Each side table loaded is also
    checked against the log: its key must be in the log, be numbers in both or strings in both, and be
    found for at least ``cfg.min_key_coverage`` of the log rows (if the join takes any column from it).
    """
    cfg = cfg or ValidationConfig()
    report = ValidationReport(success=True, title=title)
    report.failures.extend(missing_tables(tables, origins, schema))
    present = {n: tables[n] for n in [LOG_TABLE, *schema.side_tables] if n in tables}
    all_columns = {n: [str(c) for c in f.columns] for n, f in present.items()}
    suites, frames = {}, {}
    for name, frame in present.items():
        non_numeric = _non_numeric_columns(frame, [n.name for n in schema.numerical])
        suites[name] = build_table_suite(
            name,
            all_columns[name],
            schema,
            cfg,
            all_columns=all_columns,
            non_numeric=non_numeric,
            label_required=label_required,
        )
        frames[name] = prepare_table(name, frame, schema)
        report.tables[name] = TableStats(
            dataset=origins.get(name, name), table=name, rows=len(frame), columns=frame.shape[1]
        )
    type_checks = _add_join_checks(present, origins, schema, cfg, suites, frames)
    jobs = [(name, frames[name], suites[name]) for name in present]
    for name, validation in _run_suites(jobs, cfg.max_offending_values).items():
        _collect(origins.get(name, name), name, frames[name], validation, cfg.max_offending_values, report)
    for outcome, failure in type_checks:
        report.outcomes.append(outcome)
        if failure is not None:
            report.failures.append(failure)
    report.success = not report.failures
    return report


_KEY_KINDS = {
    "integer": "numbers",
    "floating": "numbers",
    "mixed-integer-float": "numbers",
    "decimal": "numbers",
    "boolean": "numbers",
    "string": "strings",
    "bytes": "strings",
    "datetime64": "datetimes",
    "datetime": "datetimes",
    "date": "datetimes",
}


def _key_kind(series: pd.Series) -> str | None:
    """What a key column holds: numbers, strings or datetimes; None when empty or mixed (not compared)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetimes"
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numbers"
    values = series.cat.categories.to_series() if isinstance(series.dtype, pd.CategoricalDtype) else series
    return _KEY_KINDS.get(pd.api.types.infer_dtype(values, skipna=True))


def _add_join_checks(
    present: Mapping[str, pd.DataFrame],
    origins: Mapping[str, str],
    schema: SchemaConfig,
    cfg: ValidationConfig,
    suites: dict[str, ExpectationSuite],
    frames: dict[str, pd.DataFrame],
) -> list[tuple[ExpectationOutcome, Failure | None]]:
    """Cross-table checks of each side table's key against the log.

    Key types (pandas) are returned as (outcome, failure or None); key coverage is added to the log's GX
    suite, on a derived boolean column added to the log's prepared frame. A key missing from either table
    is reported by that table's suite ("column exists") and skipped here.
    """
    if LOG_TABLE not in present:
        return []
    E = gx.expectations
    log = present[LOG_TABLE]
    log_origin = origins.get(LOG_TABLE, LOG_TABLE)
    taken = _join_columns(schema, {n: [str(c) for c in f.columns] for n, f in present.items()})
    checks: list[tuple[ExpectationOutcome, Failure | None]] = []
    derived: dict[str, np.ndarray] = {}
    for name, side in schema.side_tables.items():
        key = side.key
        if name not in present or key not in log.columns or key not in present[name].columns:
            continue
        side_frame, side_origin = present[name], origins.get(name, name)
        lk, sk = log[key], side_frame[key]
        if isinstance(lk, pd.DataFrame) or isinstance(sk, pd.DataFrame):
            continue  # a repeated column name: refused when the file is read
        kinds = (_key_kind(lk), _key_kind(sk))
        ok = None in kinds or kinds[0] == kinds[1]
        outcome = ExpectationOutcome(
            dataset=log_origin,
            table=LOG_TABLE,
            column=key,
            rule=RULE_KEY_TYPES,
            expectation_type="pandas:join_key_types",
            success=ok,
            observed_value={LOG_TABLE: str(lk.dtype), name: str(sk.dtype)},
        )
        failure = None
        if not ok:
            failure = Failure(
                dataset=log_origin,
                table=LOG_TABLE,
                column=key,
                rule=RULE_KEY_TYPES,
                examples=_distinct([*lk.dropna().head(1), *sk.dropna().head(1)]),
                detail=key_types_detail(key, name, side_origin, kinds, (lk.dtype, sk.dtype)),
            )
        checks.append((outcome, failure))
        if not ok:
            continue
        column = key_coverage_column(key, name)
        derived[column] = (lk.notna() & lk.isin(sk.dropna().unique())).to_numpy()
        columns = taken.get(name, [])
        meta: dict[str, Any] = {"source_column": key, "side_table": name}
        if columns:
            meta["min_key_coverage"] = cfg.min_key_coverage
            meta["detail"] = key_coverage_detail(key, name, side_origin, cfg.min_key_coverage, columns)
        else:
            meta["detail"] = f"not gated: the join takes no schema column from side table '{name}'"
        suites[LOG_TABLE].add_expectation(
            _E(
                E.ExpectColumnValuesToBeInSet,
                RULE_KEY_COVERAGE,
                key,
                column=column,
                value_set=[True],
                mostly=cfg.min_key_coverage if columns else 0.0,
                meta=meta,
            )
        )
    if derived:
        frames[LOG_TABLE] = frames[LOG_TABLE].assign(**derived)
    return checks


def _non_numeric_columns(frame: pd.DataFrame, names: Iterable[str]) -> list[str]:
    """Columns among ``names`` holding values that are not numbers (strings, dates, ...)."""
    out = []
    for name in names:
        if name not in frame.columns or isinstance(frame[name], pd.DataFrame):
            continue
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or (
            pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_datetime64_any_dtype(col)
        ):
            continue
        if (
            col.dtype == object
            and not col.map(
                lambda v: isinstance(v, (str, bytes)) or not isinstance(v, (int, float, np.number, type(None)))
            ).any()
        ):
            continue  # object column of plain numbers: checked value by value
        out.append(name)
    return out


#: A full garbage collection every this many batches: Great Expectations leaves each batch's frame in
#: reference cycles that only a full collection frees (~0.2 s), and the raw gate grew by ~60 MB a batch
#: of 10^6 rows without it (1.1 GB after 10 batches, 5.5 GB after 100; flat at ~0.8 GB with it).
_COLLECT_EVERY = 4


def _batches(table: Any, columns: list[str], batch_rows: int) -> Iterable[pd.DataFrame]:
    """The table's ``columns`` as frames of at most ``batch_rows`` rows (one empty frame when empty),
    for GX to validate one at a time; memory stays that of a few batches (see :data:`_COLLECT_EVERY`)."""
    present = [c for c in columns if c in table.columns]
    empty = True
    for i, batch in enumerate(table.select(*present).to_pyarrow_batches(chunk_size=batch_rows), 1):
        if batch.num_rows:
            empty = False
            yield batch.to_pandas()
        if i % _COLLECT_EVERY == 0:
            gc.collect()
    if empty:
        yield table.select(*present).limit(0).to_pandas()


def _split_facts(table: Any, time_col: str | None) -> tuple[int, Any, Any]:
    """(rows, min time, max time) of one split, as engine aggregates (times None when absent)."""
    has_time = bool(time_col) and time_col in table.columns
    facts = (
        table.aggregate(
            n=table.count(), **({"lo": table[time_col].min(), "hi": table[time_col].max()} if has_time else {})
        )
        .to_pandas()
        .iloc[0]
    )
    lo, hi = facts.get("lo"), facts.get("hi")
    return int(facts["n"]), None if lo is None or pd.isna(lo) else lo, None if hi is None or pd.isna(hi) else hi


def _plain(value: Any) -> Any:
    """A time bound GX can hold in its (JSON) expectation config: numbers as Python numbers, datetimes
    as ISO text, which GX compares with the column's datetimes."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


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
    _context()
    E = gx.expectations
    facts = {name: _split_facts(table, time_col) for name, table in tables.items()}
    op = "<=" if allow_ties else "<"
    after: dict[str, tuple[str, Any]] = {}  # late split -> (early split, the early split's max time)
    if time_col and check_order:
        for early, late in (("train", "validation"), ("validation", "test")):
            if facts[early][0] and facts[late][0] and facts[early][2] is not None:
                after[late] = (early, facts[early][2])
    reports: list[ValidationReport] = []
    summary = ValidationReport(success=True, title="Split validation")
    for name, table in tables.items():
        dataset = origins.get(name, name)
        rows, late_min, _ = facts[name]
        suite = ExpectationSuite(name=f"ccss_split_{name}")
        suite.add_expectation(_E(E.ExpectColumnToExist, RULE_EXISTS, label_col, column=label_col))
        if time_col:
            suite.add_expectation(_E(E.ExpectColumnToExist, RULE_EXISTS, time_col, column=time_col))
        if label_col in table.columns:
            suite.add_expectation(_E(E.ExpectColumnValuesToNotBeNull, RULE_LABEL_NOT_NULL, label_col, column=label_col))
            suite.add_expectation(
                _E(E.ExpectColumnValuesToBeInSet, RULE_LABEL_SET, label_col, column=label_col, value_set=[0, 1])
            )
        if name in after:
            early, boundary = after[name]
            suite.add_expectation(
                _E(
                    E.ExpectColumnValuesToBeBetween,
                    f"{RULE_TIME_ORDER}: max({early}) {op} min({name})",
                    time_col,
                    column=time_col,
                    min_value=_plain(boundary),
                    strict_min=not allow_ties,
                    meta={
                        "detail": f"max({early})={boundary}, min({name})={late_min}: {name} rows "
                        f"{'before' if allow_ties else 'at or before'} the end of {early}",
                        "observed": {f"max_{early}": _plain(boundary), f"min_{name}": _plain(late_min)},
                    },
                )
            )
        for batch in _batches(table, [label_col, *([time_col] if time_col else [])], batch_rows):
            part = ValidationReport(success=True, title="Split validation")
            for table_name, res in _run_suites([(name, batch, suite)], max_offending_values).items():
                _collect(dataset, table_name, batch, res, max_offending_values, part)
            reports.append(part)
        summary.tables[name] = TableStats(dataset=dataset, table=name, rows=rows, columns=len(table.columns))
        summary.outcomes.append(
            ExpectationOutcome(dataset, name, None, RULE_SPLIT_NOT_EMPTY, "engine:row_count", rows >= 1, None, rows)
        )
        if rows < 1:
            summary.failures.append(Failure(dataset, name, None, RULE_SPLIT_NOT_EMPTY, detail="0 rows"))
        elif label_col in table.columns:
            distinct = table.select(label_col).distinct().to_pandas()
            classes = ExpectationSuite(name=f"ccss_split_{name}_classes")
            classes.add_expectation(
                _E(
                    E.ExpectColumnDistinctValuesToContainSet,
                    RULE_BOTH_CLASSES,
                    label_col,
                    column=label_col,
                    value_set=[0, 1],
                )
            )
            for table_name, res in _run_suites([(name, distinct, classes)], max_offending_values).items():
                _collect(dataset, table_name, distinct, res, max_offending_values, summary)
    report = combine_reports([*reports, summary], "Split validation", max_offending_values)
    report.tables = summary.tables
    report.success = not report.failures
    return report
