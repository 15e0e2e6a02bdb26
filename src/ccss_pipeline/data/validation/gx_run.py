"""Great Expectations' lifecycle (one ephemeral context per process; datasources per call and removed)
and the reading of its results into :class:`~ccss_pipeline.data.validation.report.Failure` records."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pandas as pd

from ccss_pipeline.data.validation.gx_import import ExpectationSuite, gx  # GX without PySpark
from ccss_pipeline.data.validation.report import (
    ExpectationOutcome,
    Failure,
    ValidationReport,
    _distinct,
    _fmt,
    dated_timestamp,
)
from ccss_pipeline.data.validation.rules import RULE_EXISTS, RULE_NOT_ALL_NULL, RULE_TS_RANGE

_CONTEXT: Any = None
_LOCK = threading.RLock()


def _context() -> Any:
    global _CONTEXT
    with _LOCK:
        if _CONTEXT is None:
            ctx = gx.get_context(mode="ephemeral")
            try:
                from great_expectations.data_context.types.base import ProgressBarsConfig

                ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            except Exception:  # pragma: no cover - cosmetic only
                pass
            _CONTEXT = ctx
        return _CONTEXT


def _run_suites(jobs: list[tuple[str, pd.DataFrame, ExpectationSuite]], max_examples: int) -> dict[str, Any]:
    """Validate each (table, frame, suite) with GX; returns table -> ExpectationSuiteValidationResult."""
    results: dict[str, Any] = {}
    with _LOCK:
        ctx = _context()
        ds_name = f"ccss_{uuid.uuid4().hex}"
        ds = ctx.data_sources.add_pandas(ds_name)
        try:
            for table, frame, suite in jobs:
                asset = ds.add_dataframe_asset(name=table)
                bd = asset.add_batch_definition_whole_dataframe(f"{table}_whole")
                batch = bd.get_batch(batch_parameters={"dataframe": frame})
                results[table] = batch.validate(
                    suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_examples}
                )
        finally:
            ctx.data_sources.delete(ds_name)
    return results


def _error_message(exc_info: Any) -> str | None:
    """The GX error message of an errored expectation, None if it ran."""
    if not exc_info:
        return None
    if isinstance(exc_info, dict) and "raised_exception" in exc_info:
        return (exc_info.get("exception_message") or "error") if exc_info.get("raised_exception") else None
    if isinstance(exc_info, dict):  # keyed by metric id
        for info in exc_info.values():
            if isinstance(info, dict) and info.get("raised_exception"):
                return str(info.get("exception_message") or "error")
    return None


def _collect(
    dataset: str,
    table: str,
    frame: pd.DataFrame,
    validation: Any,
    max_examples: int,
    report: ValidationReport,
) -> None:
    for res in validation.results:
        conf = res.expectation_config
        meta = dict(conf.meta or {})
        kwargs = conf.kwargs
        gx_col = kwargs.get("column")
        column = meta.get("column") or gx_col or (", ".join(kwargs.get("column_list", [])) or None)
        rule = meta.get("rule") or conf.type
        result = dict(res.result or {})
        err = _error_message(res.exception_info)
        unexpected = result.get("unexpected_count")
        observed = result.get("observed_value")
        if observed is None:  # a row-level expectation: what the suite knew (e.g. the split boundaries)
            observed = meta.get("observed")
        success = bool(res.success) and err is None
        coverage = None
        if meta.get("side_table") and err is None:  # "key found in side table": share of log rows found
            rows = int(result.get("element_count") or 0)
            coverage = (rows - int(unexpected or 0)) / rows if rows else None
            observed = {
                "side_table": meta["side_table"],
                "coverage": None if coverage is None else round(coverage, 6),
                "min_key_coverage": meta.get("min_key_coverage", "not gated"),
            }
        report.outcomes.append(
            ExpectationOutcome(
                dataset=dataset,
                table=table,
                column=column,
                rule=rule,
                expectation_type=conf.type,
                success=success,
                unexpected_count=unexpected,
                observed_value=observed,
                error=err,
            )
        )
        if success or (rule == RULE_NOT_ALL_NULL and not len(frame)):  # an empty table fails "row count" once
            continue
        detail = str(meta.get("detail", ""))
        examples: list[Any] = []
        if err is not None:
            needed = [gx_col] if gx_col else list(kwargs.get("column_list", []))
            missing = [c for c in needed if c not in frame.columns]
            if missing:
                rule, detail = RULE_EXISTS, f"column missing, so '{meta.get('rule', conf.type)}' not evaluated"
                column = ", ".join(missing) if not meta.get("source_column") else column
            else:
                detail = f"could not be evaluated: {err.splitlines()[0][:200]}"
        else:
            src = meta.get("source_column")
            srcs = [c for c in meta.get("source_columns") or [] if c in frame.columns]
            idx = result.get("partial_unexpected_index_list")
            example_rows = (
                [i for i in idx or [] if not isinstance(i, dict) and i in frame.index] if frame.index.is_unique else []
            )
            if rule == RULE_TS_RANGE and src in frame.columns and gx_col in frame.columns and example_rows:
                examples = [dated_timestamp(frame.at[i, src], frame.at[i, gx_col]) for i in example_rows]
            elif src and src in frame.columns and example_rows:  # derived column: raw values
                examples = [frame.at[i, src] for i in example_rows]
            elif srcs and example_rows:  # compound key with a derived column: the raw values of the row
                examples = [{c: frame.at[i, c] for c in srcs} for i in example_rows]
            else:
                examples = list(result.get("partial_unexpected_list") or [])
            examples = _distinct(examples)
            if conf.type == "expect_column_values_to_be_in_type_list" and unexpected is None:
                detail = f"observed dtype {observed}"
            elif conf.type == "expect_table_row_count_to_be_between":
                detail = f"observed {observed} rows"
            elif conf.type == "expect_column_to_exist" and not detail:
                detail = "column missing"
            elif conf.type == "expect_column_unique_value_count_to_be_between":
                detail = f"observed {observed} distinct value(s): every value is missing"
            elif coverage is not None:
                detail = detail.replace("{coverage}", f"{coverage:.2%}")
            elif conf.type == "expect_column_distinct_values_to_contain_set":
                seen = sorted(map(_fmt, frame[gx_col].dropna().unique())) if gx_col in frame.columns else []
                detail = f"observed values {{{', '.join(seen)}}}, expected {set(kwargs.get('value_set', []))}"
        report.failures.append(
            Failure(
                dataset=dataset,
                table=table,
                column=column,
                rule=rule,
                unexpected_count=unexpected,
                examples=examples[:max_examples],
                detail=detail,
            )
        )
