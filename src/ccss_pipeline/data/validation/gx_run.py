"""Great Expectations' lifecycle (one ephemeral context per process; datasources per call and removed)
and the reading of its results into :class:`~ccss_pipeline.data.validation.report.Failure` records."""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ccss_pipeline.data.validation.gx_import import ExpectationSuite, gx  # GX without PySpark
from ccss_pipeline.data.validation.report import (
    ExpectationOutcome,
    Failure,
    ValidationReport,
    dated_timestamp,
    distinct_values,
    format_value,
)
from ccss_pipeline.data.validation.rules import RULE_EXISTS, RULE_NOT_ALL_NULL, RULE_TS_RANGE

_CONTEXT: Any = None
_LOCK = threading.RLock()


def gx_context() -> Any:
    """The process's one ephemeral GX context (progress bars off), made on first use."""
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


def run_suites(jobs: list[tuple[str, pd.DataFrame, ExpectationSuite]], max_examples: int) -> dict[str, Any]:
    """Validate each (table, frame, suite) with GX; returns table -> ExpectationSuiteValidationResult."""
    results: dict[str, Any] = {}
    with _LOCK:
        ctx = gx_context()
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


#: A full garbage collection every this many batches: Great Expectations leaves each batch's frame in
#: reference cycles that only a full collection frees (~0.2 s), and the raw gate grew by ~60 MB a batch
#: of 10^6 rows without it (1.1 GB after 10 batches, 5.5 GB after 100; flat at ~0.8 GB with it).
COLLECT_EVERY = 4


def engine_batches(table: Any, columns: list[str], batch_rows: int) -> Iterable[pd.DataFrame]:
    """The engine table's ``columns`` as frames of at most ``batch_rows`` rows (one empty frame when
    empty), for GX to validate one at a time: GX 1.x validates pandas batches, not Ibis expressions.
    Memory stays that of a few batches (see :data:`COLLECT_EVERY`)."""
    present = [c for c in columns if c in table.columns]
    empty = True
    for i, batch in enumerate(table.select(*present).to_pyarrow_batches(chunk_size=batch_rows), 1):
        if batch.num_rows:
            empty = False
            yield batch.to_pandas()
        if i % COLLECT_EVERY == 0:
            gc.collect()
    if empty:
        yield table.select(*present).limit(0).to_pandas()


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


@dataclass(frozen=True)
class ReadResult:
    """One GX expectation result, read into what the report needs: the readable rule and column (from the
    suite's meta), the error GX raised, the counts and the observed value."""

    expectation_type: str
    meta: dict[str, Any]
    kwargs: Any
    gx_column: str | None
    column: str | None
    rule: str
    result: dict[str, Any]
    error: str | None
    unexpected: Any
    observed: Any
    success: bool
    coverage: float | None

    def outcome(self, dataset: str, table: str) -> ExpectationOutcome:
        return ExpectationOutcome(
            dataset=dataset,
            table=table,
            column=self.column,
            rule=self.rule,
            expectation_type=self.expectation_type,
            success=self.success,
            unexpected_count=self.unexpected,
            observed_value=self.observed,
            error=self.error,
        )


def read_result(res: Any) -> ReadResult:
    """A GX ``ExpectationValidationResult`` as a :class:`ReadResult`; "key found in side table" gets its
    coverage (the share of log rows found) as its observed value."""
    conf = res.expectation_config
    meta = dict(conf.meta or {})
    kwargs = conf.kwargs
    gx_col = kwargs.get("column")
    result = dict(res.result or {})
    err = _error_message(res.exception_info)
    unexpected = result.get("unexpected_count")
    observed = result.get("observed_value")
    if observed is None:  # a row-level expectation: what the suite knew (e.g. the split boundaries)
        observed = meta.get("observed")
    coverage = None
    if meta.get("side_table") and err is None:  # "key found in side table": share of log rows found
        rows = int(result.get("element_count") or 0)
        coverage = (rows - int(unexpected or 0)) / rows if rows else None
        observed = {
            "side_table": meta["side_table"],
            "coverage": None if coverage is None else round(coverage, 6),
            "min_key_coverage": meta.get("min_key_coverage", "not gated"),
        }
    return ReadResult(
        expectation_type=conf.type,
        meta=meta,
        kwargs=kwargs,
        gx_column=gx_col,
        column=meta.get("column") or gx_col or (", ".join(kwargs.get("column_list", [])) or None),
        rule=meta.get("rule") or conf.type,
        result=result,
        error=err,
        unexpected=unexpected,
        observed=observed,
        success=bool(res.success) and err is None,
        coverage=coverage,
    )


def collect_results(
    dataset: str,
    table: str,
    frame: pd.DataFrame,
    validation: Any,
    max_examples: int,
    report: ValidationReport,
) -> None:
    """Every result of one GX validation of ``frame`` into ``report``: an outcome each, a failure each
    that did not pass (an empty table fails "row count" once, not "not entirely null" as well)."""
    for res in validation.results:
        read = read_result(res)
        report.outcomes.append(read.outcome(dataset, table))
        if read.success or (read.rule == RULE_NOT_ALL_NULL and not len(frame)):
            continue
        report.failures.append(_failure(dataset, table, frame, read, max_examples))


def _failure(dataset: str, table: str, frame: pd.DataFrame, read: ReadResult, max_examples: int) -> Failure:
    """The failure of a result that did not pass: an errored one names the missing column, a failed one
    shows offending values read back from the raw column(s)."""
    rule, column, detail = read.rule, read.column, str(read.meta.get("detail", ""))
    examples: list[Any] = []
    if read.error is not None:
        rule, column, detail = _errored(read, frame)
    else:
        examples = distinct_values(_examples(read, frame))
        detail = _failed_detail(read, frame, detail)
    return Failure(
        dataset=dataset,
        table=table,
        column=column,
        rule=rule,
        unexpected_count=read.unexpected,
        examples=examples[:max_examples],
        detail=detail,
    )


def _errored(read: ReadResult, frame: pd.DataFrame) -> tuple[str, str | None, str]:
    """(rule, column, detail) of an expectation GX could not evaluate: "column exists" when a column it
    needs is absent, the GX error's first line otherwise."""
    assert read.error is not None
    needed = [read.gx_column] if read.gx_column else list(read.kwargs.get("column_list", []))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        column = ", ".join(missing) if not read.meta.get("source_column") else read.column
        return RULE_EXISTS, column, f"column missing, so '{read.meta.get('rule', read.expectation_type)}' not evaluated"
    return read.rule, read.column, f"could not be evaluated: {read.error.splitlines()[0][:200]}"


def _examples(read: ReadResult, frame: pd.DataFrame) -> list[Any]:
    """Offending values: the raw values behind a derived column (a timestamp with its date), the raw row
    of a compound key, else GX's partial unexpected list."""
    src = read.meta.get("source_column")
    srcs = [c for c in read.meta.get("source_columns") or [] if c in frame.columns]
    idx = read.result.get("partial_unexpected_index_list")
    example_rows = (
        [i for i in idx or [] if not isinstance(i, dict) and i in frame.index] if frame.index.is_unique else []
    )
    gx_col = read.gx_column
    if read.rule == RULE_TS_RANGE and src in frame.columns and gx_col in frame.columns and example_rows:
        return [dated_timestamp(frame.at[i, src], frame.at[i, gx_col]) for i in example_rows]
    if src and src in frame.columns and example_rows:  # derived column: raw values
        return [frame.at[i, src] for i in example_rows]
    if srcs and example_rows:  # compound key with a derived column: the raw values of the row
        return [{c: frame.at[i, c] for c in srcs} for i in example_rows]
    return list(read.result.get("partial_unexpected_list") or [])


def _failed_detail(read: ReadResult, frame: pd.DataFrame, detail: str) -> str:
    """The failure's explanation: what GX observed for table-level expectations, the suite's own text
    otherwise (with the measured coverage filled in)."""
    kind, observed = read.expectation_type, read.observed
    if kind == "expect_column_values_to_be_in_type_list" and read.unexpected is None:
        return f"observed dtype {observed}"
    if kind == "expect_table_row_count_to_be_between":
        return f"observed {observed} rows"
    if kind == "expect_column_to_exist" and not detail:
        return "column missing"
    if kind == "expect_column_unique_value_count_to_be_between":
        return f"observed {observed} distinct value(s): every value is missing"
    if read.coverage is not None:
        return detail.replace("{coverage}", f"{read.coverage:.2%}")
    if kind == "expect_column_distinct_values_to_contain_set":
        gx_col = read.gx_column
        seen = sorted(map(format_value, frame[gx_col].dropna().unique())) if gx_col in frame.columns else []
        return f"observed values {{{', '.join(seen)}}}, expected {set(read.kwargs.get('value_set', []))}"
    return detail
