"""The one parser of raw timestamp columns, shared by the validation gate and the join.

Units (``schema.timestamp_unit``):

- ``ms`` / ``s``: numbers (or number strings) since the Unix epoch; ``s`` is multiplied by 1000.
  Booleans and datetime values are not numbers here: unparseable.
- ``datetime``: with ``schema.timestamp_format`` (a strftime format such as ``"%d/%m/%Y %H:%M"``) every
  value must match that format exactly; without it every value must be ISO 8601 (``2022-04-05``,
  ``2022-04-05 10:00:00``, ``2022-04-05T10:00:00Z``, ``2022-04-05T12:00:00+02:00``, ...). Anything else is
  unparseable: ``03/04/2022`` is never guessed (day-first or month-first cannot be told apart). Values
  with a timezone are converted to UTC; values without one are taken as UTC. Columns already holding
  datetimes (``datetime64``) are used as they are; plain numbers in a ``datetime`` column are unparseable.

:func:`epoch_ms` gives float milliseconds with NaN where a value is missing or unparseable (what the gate
validates); :func:`to_epoch_ms` gives int64 milliseconds and raises :class:`ValueError` naming the column
if any value is missing or unparseable (what the join uses, after the gate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ISO_EXAMPLES", "epoch_ms", "to_epoch_ms"]

#: Shown in messages: what an ISO 8601 timestamp looks like.
ISO_EXAMPLES = "'2022-04-05', '2022-04-05 10:00:00' or '2022-04-05T10:00:00Z'"

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def _nan(series: pd.Series) -> pd.Series:
    return pd.Series(np.nan, index=series.index, dtype="float64")


def _is_datetime(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series)


def epoch_ms(series: pd.Series, unit: str, timestamp_format: str | None = None) -> pd.Series:
    """Raw timestamps -> float64 milliseconds since the epoch (UTC), NaN where missing or unparseable."""
    if unit in ("ms", "s"):
        if pd.api.types.is_bool_dtype(series) or _is_datetime(series):
            return _nan(series)
        num = pd.to_numeric(series, errors="coerce").astype("float64")
        return num * 1000.0 if unit == "s" else num
    if unit != "datetime":
        raise ValueError(f"unknown timestamp unit {unit!r} (expected ms, s or datetime)")
    if _is_datetime(series):
        dt = series if getattr(series.dt, "tz", None) is not None else series.dt.tz_localize("UTC")
    elif pd.api.types.is_numeric_dtype(series):  # numbers are not datetimes (unit ms or s?)
        return _nan(series)
    else:
        fmt = timestamp_format if timestamp_format else "ISO8601"
        try:
            dt = pd.to_datetime(series, format=fmt, errors="coerce", utc=True)
        except (TypeError, ValueError):  # e.g. a column of unhashable or exotic objects
            dt = pd.to_datetime(series.astype(str), format=fmt, errors="coerce", utc=True)
    dt = dt.dt.tz_convert("UTC")
    return ((dt - _EPOCH) / pd.Timedelta(milliseconds=1)).astype("float64")


def to_epoch_ms(
    series: pd.Series, unit: str, timestamp_format: str | None = None, *, column: str | None = None
) -> np.ndarray:
    """Raw timestamps -> int64 milliseconds since the epoch; :class:`ValueError` if any cannot be parsed."""
    ms = epoch_ms(series, unit, timestamp_format)
    bad = ms.isna().to_numpy()
    if bad.any():
        name = column if column is not None else (series.name if series.name is not None else "timestamp")
        examples = list(dict.fromkeys(repr(v) for v in series[bad].head(50)))[:5]
        if unit == "datetime":
            how = (
                f"matching schema.timestamp_format {timestamp_format!r}"
                if timestamp_format
                else f"in ISO 8601 ({ISO_EXAMPLES}); set schema.timestamp_format (e.g. '%d/%m/%Y') for another layout"
            )
        else:
            how = f"numbers of {'milliseconds' if unit == 'ms' else 'seconds'} since the epoch"
        raise ValueError(
            f"timestamp column '{name}': {int(bad.sum())} value(s) missing or not {how}; "
            f"e.g. {', '.join(examples)} (the raw-data validation gate reports these as 'timestamp parseable')"
        )
    return np.rint(ms.to_numpy(np.float64)).astype(np.int64)
