"""What the gate found: failures per file, column and rule, as one report (JSON and Markdown) and one error."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd


def _jsonable(value: Any) -> Any:
    """Plain-Python, strict-JSON version of a value (numpy scalars, NaN/inf, timestamps, dicts)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, DatedTimestamp):
        return value.to_dict()
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if value is pd.NaT:
        return "NaT"
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(value))
    return str(value)


def format_value(value: Any) -> str:
    """How a value reads in a message: text quoted, numpy scalars as Python numbers, a row as (k=v, ...)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={format_value(v)}" for k, v in value.items()) + ")"
    return repr(value) if isinstance(value, str) else str(value)


class DatedTimestamp:
    """An offending raw timestamp shown with the UTC instant it means: a raw ``1262304000`` does not say
    whether it is 2010 or 1970 + 15 days (seconds or milliseconds), ``1262304000 (= 2010-01-01T00:00:00Z)``
    does. ``epoch_ms``: the instant as the gate parsed it (the derived column).

    Not a dataclass on purpose: :func:`dataclasses.asdict` of a :class:`Failure` would turn it into a
    dict; as a plain value it is written to the JSON report as the text the message shows."""

    __slots__ = ("epoch_ms", "raw")

    def __init__(self, raw: Any, epoch_ms: float) -> None:
        self.raw, self.epoch_ms = raw, epoch_ms

    def __str__(self) -> str:
        return f"{format_value(self.raw)} (= {iso_utc(self.epoch_ms)})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's form; :meth:`from_saved` reads it back (the message stays the same)."""
        return {"raw": _jsonable(self.raw), "epoch_ms": _jsonable(self.epoch_ms), "utc": iso_utc(self.epoch_ms)}

    @classmethod
    def from_saved(cls, value: Any) -> Any:
        """An example as the JSON report holds it: a saved :class:`DatedTimestamp` back, anything else as is."""
        if isinstance(value, dict) and set(value) == {"raw", "epoch_ms", "utc"}:
            return cls(value["raw"], float(value["epoch_ms"]))
        return value

    def __repr__(self) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatedTimestamp) and (self.raw, self.epoch_ms) == (other.raw, other.epoch_ms)

    def __hash__(self) -> int:
        return hash((self.raw, self.epoch_ms))


def iso_utc(epoch_ms: Any) -> str:
    """ISO 8601 UTC of milliseconds since the epoch (``2010-01-01T00:00:00Z``); beyond the years 1–9999
    or not a number, says so."""
    try:
        seconds = float(epoch_ms) / 1000.0
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError, OSError):
        return "no representable date"


def dated_timestamp(raw: Any, epoch_ms: Any) -> Any:
    """``raw`` with its ISO date when it is a number (epoch seconds or milliseconds); a text or datetime
    value already reads as a date and is kept as it is."""
    if isinstance(raw, np.generic):
        raw = raw.item()
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return raw
    return DatedTimestamp(raw, float(epoch_ms))


@dataclass(frozen=True)
class Failure:
    """One failed expectation: which file, table, column, rule, how many rows and a few examples."""

    dataset: str
    table: str
    column: str | None
    rule: str
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    detail: str = ""

    def line(self) -> str:
        col = f"column '{self.column}'" if self.column else "table"
        parts = [f"{self.dataset} [table '{self.table}'], {col}: {self.rule} failed"]
        if self.unexpected_count is not None:
            parts.append(f" for {self.unexpected_count} row(s)")
        if self.examples:
            parts.append("; e.g. " + ", ".join(format_value(v) for v in self.examples))
        if self.detail:
            parts.append(f" ({self.detail})")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class ExpectationOutcome:
    """One evaluated expectation (passed or failed), for the report's statistics."""

    dataset: str
    table: str
    column: str | None
    rule: str
    expectation_type: str
    success: bool
    unexpected_count: int | None = None
    observed_value: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass
class TableStats:
    dataset: str
    table: str
    rows: int
    columns: int


@dataclass
class ValidationReport:
    """Result of a validation gate; ``success`` is True iff there is no failure."""

    success: bool
    failures: list[Failure] = field(default_factory=list)
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    tables: dict[str, TableStats] = field(default_factory=dict)
    title: str = "Data validation"

    def to_dict(self) -> dict[str, Any]:
        tables: dict[str, Any] = {}
        for name, st in self.tables.items():
            outs = [o for o in self.outcomes if o.table == name]
            tables[name] = {
                "dataset": st.dataset,
                "rows": st.rows,
                "columns": st.columns,
                "evaluated": len(outs),
                "failed": sum(not o.success for o in outs),
                "expectations": [o.to_dict() for o in outs],
            }
        out = {
            "title": self.title,
            "success": self.success,
            "n_failures": len(self.failures),
            "failures": [f.to_dict() for f in self.failures],
            "tables": tables,
            "error_message": "" if self.success else self.error_message(),
        }
        json.dumps(out, allow_nan=False)  # guarantee: strict JSON
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """The report :meth:`to_dict` wrote (JSON values: examples and observed values as saved)."""
        outcomes, tables = [], {}
        for name, t in data.get("tables", {}).items():
            tables[name] = TableStats(t["dataset"], name, int(t["rows"]), int(t["columns"]))
            outcomes += [ExpectationOutcome(**o) for o in t.get("expectations", [])]
        return cls(
            success=bool(data["success"]),
            failures=[
                Failure(**{**f, "examples": [DatedTimestamp.from_saved(e) for e in f.get("examples", [])]})
                for f in data.get("failures", [])
            ],
            outcomes=outcomes,
            tables=tables,
            title=str(data.get("title", "Data validation")),
        )

    def error_message(self) -> str:
        if self.success:
            return f"{self.title}: PASSED"
        datasets = sorted({f.dataset for f in self.failures})
        head = (
            f"{self.title} FAILED: {len(self.failures)} expectation(s) failed in "
            f"{len(datasets)} dataset(s) ({', '.join(datasets)}):"
        )
        return "\n".join([head, *(f"  - {f.line()}" for f in self.failures)])

    def to_markdown(self) -> str:
        lines = [
            f"# {self.title} report",
            "",
            f"**Result: {'PASSED' if self.success else 'FAILED'}** "
            f"({len(self.outcomes)} expectations evaluated, {len(self.failures)} failed)",
            "",
        ]
        for name, st in self.tables.items():
            lines += [
                f"## {name} — `{st.dataset}`",
                "",
                f"{st.rows} rows, {st.columns} columns",
                "",
                "| column | rule | expectation | result | unexpected | observed |",
                "|---|---|---|---|---|---|",
            ]
            for o in (o for o in self.outcomes if o.table == name):
                res = "PASS" if o.success else ("ERROR" if o.error else "FAIL")
                unexp = "" if o.unexpected_count is None else str(o.unexpected_count)
                lines.append(
                    f"| {o.column or '(table)'} | {_md(o.rule)} | `{o.expectation_type}` | {res} "
                    f"| {unexp} | {_md(_observed(o.observed_value))} |"
                )
            lines.append("")
        if self.failures:
            lines += ["## Failures", ""] + [f"- {_md(f.line())}" for f in self.failures] + [""]
        return "\n".join(lines)


def combine_reports(reports: Iterable[ValidationReport], title: str, max_examples: int = 5) -> ValidationReport:
    """One report for a table validated a chunk at a time: an expectation passes when it passed on every
    chunk; counts of unexpected rows and table rows add up; examples are kept up to ``max_examples``."""
    outcomes: dict[tuple[Any, ...], ExpectationOutcome] = {}
    failures: dict[tuple[Any, ...], Failure] = {}
    tables: dict[str, TableStats] = {}
    for report in reports:
        for o in report.outcomes:
            key = (o.dataset, o.table, o.column, o.rule, o.expectation_type)
            seen = outcomes.get(key)
            count = (
                None
                if o.unexpected_count is None and (seen is None or seen.unexpected_count is None)
                else ((o.unexpected_count or 0) + ((seen.unexpected_count or 0) if seen else 0))
            )
            outcomes[key] = ExpectationOutcome(
                o.dataset,
                o.table,
                o.column,
                o.rule,
                o.expectation_type,
                o.success and (seen.success if seen else True),
                count,
                seen.observed_value if seen else o.observed_value,
                (seen.error if seen else None) or o.error,
            )
        for f in report.failures:
            failure_key = (f.dataset, f.table, f.column, f.rule)
            seen_f = failures.get(failure_key)
            if seen_f is None:
                failures[failure_key] = f
            else:
                count = None if f.unexpected_count is None else (seen_f.unexpected_count or 0) + f.unexpected_count
                examples = distinct_values([*seen_f.examples, *f.examples])[:max_examples]
                failures[failure_key] = Failure(f.dataset, f.table, f.column, f.rule, count, examples, seen_f.detail)
        for name, st in report.tables.items():
            rows = st.rows + (tables[name].rows if name in tables else 0)
            tables[name] = TableStats(st.dataset, st.table, rows, st.columns)
    return ValidationReport(
        success=not failures,
        failures=list(failures.values()),
        outcomes=list(outcomes.values()),
        tables=tables,
        title=title,
    )


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _observed(value: Any, width: int = 80) -> str:
    """A short, one-line rendering of an outcome's observed value for the Markdown table."""
    if value is None:
        return ""
    if isinstance(value, float) or isinstance(value, np.floating):
        text = f"{float(value):.6g}"
    else:
        text = format_value(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class DataValidationError(ValueError):
    """Raised when a validation gate fails; the message lists every failed expectation."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.error_message())


def raise_if_failed(report: ValidationReport) -> ValidationReport:
    """Raise :class:`DataValidationError` if the report failed; return it unchanged otherwise."""
    if not report.success:
        raise DataValidationError(report)
    return report


def distinct_values(values: list[Any]) -> list[Any]:
    """``values`` without repeats (compared by ``repr``: examples may be unhashable rows), first seen first."""
    seen: set[str] = set()
    out = []
    for v in values:
        key = repr(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out
