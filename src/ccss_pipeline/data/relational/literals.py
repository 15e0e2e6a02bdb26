"""Exact float literals in engine SQL, and the finiteness test every numerical expression shares."""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np


def real(value: float) -> Any:
    """The exact float64 ``value`` in SQL. A bare float literal is read as a DECIMAL and converted with
    a rounding error (a value equal to a bucket boundary was then compared below it); the shortest
    round-trip text cast to DOUBLE parses to the very same double on DuckDB and on Spark."""
    return ibis.literal(repr(float(value))).cast("float64")


def is_finite(value: Any) -> Any:
    """Finite and present, in one comparison: NaN sorts above every number on DuckDB and Spark, ±inf
    exceed the largest double, and NULL compares to NULL (a false condition)."""
    return value.abs() <= real(float(np.finfo(np.float64).max))
