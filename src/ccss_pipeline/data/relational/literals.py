"""Exact float literals in engine SQL."""

from __future__ import annotations

from typing import Any

import ibis


def real(value: float) -> Any:
    """The exact float64 ``value`` in SQL. A bare float literal is read as a DECIMAL and converted with
    a rounding error (a value equal to a bucket boundary was then compared below it); the shortest
    round-trip text cast to DOUBLE parses to the very same double on DuckDB and on Spark."""
    return ibis.literal(repr(float(value))).cast("float64")
