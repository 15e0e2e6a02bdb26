"""The raw gate on in-memory frames: every rule of every raw table in Great Expectations, run and
reported at once (engine tables go to ``table_gate``; ``stages`` says why both exist and picks one).

Also the pieces both raw gates share: the "table present" failures and the join-key messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.validation.gx_import import ExpectationSuite, gx  # GX without PySpark
from ccss_pipeline.data.validation.gx_run import collect_results, run_suites
from ccss_pipeline.data.validation.report import (
    ExpectationOutcome,
    Failure,
    TableStats,
    ValidationReport,
    distinct_values,
)
from ccss_pipeline.data.validation.rules import (
    LOG_TABLE,
    RULE_KEY_COVERAGE,
    RULE_KEY_TYPES,
    RULE_TABLE_PRESENT,
)
from ccss_pipeline.data.validation.suites import (
    build_table_suite,
    join_columns,
    key_coverage_column,
    prepare_table,
    tagged,
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
    for name, validation in run_suites(jobs, cfg.max_offending_values).items():
        collect_results(origins.get(name, name), name, frames[name], validation, cfg.max_offending_values, report)
    for check in type_checks:
        report.outcomes.append(check.outcome)
        if check.failure is not None:
            report.failures.append(check.failure)
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


@dataclass(frozen=True)
class KeyTypesCheck:
    """ "join key types match" of one side table (checked in pandas: GX has no such expectation)."""

    outcome: ExpectationOutcome
    failure: Failure | None


def _key_types_check(
    key: str, name: str, pair: tuple[pd.Series, pd.Series], origins: Mapping[str, str]
) -> KeyTypesCheck:
    """The log's and the side table's key hold the same kind of value (numbers, strings, datetimes)."""
    lk, sk = pair
    log_origin, side_origin = origins.get(LOG_TABLE, LOG_TABLE), origins.get(name, name)
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
    if ok:
        return KeyTypesCheck(outcome, None)
    failure = Failure(
        dataset=log_origin,
        table=LOG_TABLE,
        column=key,
        rule=RULE_KEY_TYPES,
        examples=distinct_values([*lk.dropna().head(1), *sk.dropna().head(1)]),
        detail=key_types_detail(key, name, side_origin, kinds, (lk.dtype, sk.dtype)),
    )
    return KeyTypesCheck(outcome, failure)


def _key_coverage(key: str, name: str, side_origin: str, taken: list[str], cfg: ValidationConfig) -> Any:
    """GX "key found in side table" on the log's derived boolean column (gated when the join takes a
    schema column from the side table, measured only otherwise)."""
    meta: dict[str, Any] = {"source_column": key, "side_table": name}
    if taken:
        meta["min_key_coverage"] = cfg.min_key_coverage
        meta["detail"] = key_coverage_detail(key, name, side_origin, cfg.min_key_coverage, taken)
    else:
        meta["detail"] = f"not gated: the join takes no schema column from side table '{name}'"
    return tagged(
        gx.expectations.ExpectColumnValuesToBeInSet,
        RULE_KEY_COVERAGE,
        key,
        column=key_coverage_column(key, name),
        value_set=[True],
        mostly=cfg.min_key_coverage if taken else 0.0,
        meta=meta,
    )


def repeated_column(frame: pd.DataFrame, name: str) -> bool:
    """Whether ``name`` heads more than one column (``frame[name]`` is then a frame, not a column)."""
    return int((frame.columns == name).sum()) > 1


def _key_pair(present: Mapping[str, pd.DataFrame], name: str, key: str) -> tuple[pd.Series, pd.Series] | None:
    """The log's and side table ``name``'s key columns; None when either is missing (its table's suite
    reports "column exists") or repeated (refused when the file is read)."""
    log = present[LOG_TABLE]
    if name not in present or key not in log.columns or key not in present[name].columns:
        return None
    if repeated_column(log, key) or repeated_column(present[name], key):
        return None
    return log[key], present[name][key]


def _add_join_checks(
    present: Mapping[str, pd.DataFrame],
    origins: Mapping[str, str],
    schema: SchemaConfig,
    cfg: ValidationConfig,
    suites: dict[str, ExpectationSuite],
    frames: dict[str, pd.DataFrame],
) -> list[KeyTypesCheck]:
    """Cross-table checks of each side table's key against the log.

    Key types (pandas) are returned; key coverage is added to the log's GX suite, on a derived boolean
    column added to the log's prepared frame. A key missing from either table is reported by that
    table's suite ("column exists") and skipped here.
    """
    if LOG_TABLE not in present:
        return []
    taken = join_columns(schema, {n: [str(c) for c in f.columns] for n, f in present.items()})
    checks: list[KeyTypesCheck] = []
    derived: dict[str, np.ndarray] = {}
    for name, side in schema.side_tables.items():
        pair = _key_pair(present, name, side.key)
        if pair is None:
            continue
        check = _key_types_check(side.key, name, pair, origins)
        checks.append(check)
        if check.failure is not None:
            continue
        lk, sk = pair
        derived[key_coverage_column(side.key, name)] = (lk.notna() & lk.isin(sk.dropna().unique())).to_numpy()
        coverage = _key_coverage(side.key, name, origins.get(name, name), taken.get(name, []), cfg)
        suites[LOG_TABLE].add_expectation(coverage)
    if derived:
        frames[LOG_TABLE] = frames[LOG_TABLE].assign(**derived)
    return checks


def _non_numeric_columns(frame: pd.DataFrame, names: Iterable[str]) -> list[str]:
    """Columns among ``names`` holding values that are not numbers (strings, dates, ...)."""
    out = []
    for name in names:
        if name not in frame.columns or repeated_column(frame, name):
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
