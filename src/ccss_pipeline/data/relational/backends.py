"""Open the engine that runs the data stages: DuckDB in process (default) or Spark (``--env spark``).

One connection per engine configuration and process, as kedro-datasets' Ibis datasets do: every
table of a run must live on the same connection to be joined. DuckDB runs multi-threaded in this
process and spills to ``temp_directory`` when ``memory_limit`` is reached. Spark attaches to the active
``SparkSession`` (the project's Spark hook builds it from ``conf/<env>/spark.yml``), else builds a
``local[*]`` one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

BACKENDS = ("duckdb", "pyspark")

_connections: dict[str, Any] = {}


class EngineError(ValueError):
    """The engine configuration names an unknown backend or one that is not installed."""


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True, default=str)


def connect(config: Mapping[str, Any] | None = None) -> Any:
    """The Ibis backend for ``config`` (``backend``: duckdb | pyspark, plus its options); cached.

    DuckDB options: ``threads``, ``memory_limit`` (e.g. ``"4GB"``), ``temp_directory``.
    """
    config = dict(config or {"backend": "duckdb"})
    key = _key(config)
    if key not in _connections:
        _connections[key] = _open(config)
    return _connections[key]


def _open(config: dict[str, Any]) -> Any:
    import ibis

    backend = config.pop("backend", "duckdb")
    if backend == "duckdb":
        options = {k: v for k, v in config.items() if v is not None}
        unknown = sorted(set(options) - {"threads", "memory_limit", "temp_directory"})
        if unknown:
            raise EngineError(f"unknown DuckDB engine option(s) {unknown}; use threads, memory_limit, temp_directory")
        return ibis.duckdb.connect(**options)
    if backend == "pyspark":
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise EngineError("the 'pyspark' engine needs PySpark: pip install 'ccss-pipeline[spark]'") from exc
        use_this_python_for_spark_workers()
        session = (
            SparkSession.getActiveSession()
            or SparkSession.builder.master(config.get("master") or "local[*]").appName("ccss-pipeline").getOrCreate()
        )
        return ibis.pyspark.connect(session)
    raise EngineError(f"unknown data engine backend {backend!r}; choose one of {list(BACKENDS)}")


def use_this_python_for_spark_workers() -> None:
    """Spark's Python workers run the project's UDFs (the timestamp parser): on a local master they must
    be this interpreter, which has the project installed. ``PYSPARK_PYTHON`` set by the user wins (a
    cluster names its executors' Python there)."""
    import os
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def backend_name(table: Any) -> str:
    """``duckdb`` or ``pyspark``: the engine that runs ``table``."""
    import ibis

    return str(ibis.get_backend(table).name)


def disconnect_all() -> None:
    """Close every cached connection (tests; a long-lived process that changes engines)."""
    for con in _connections.values():
        try:
            con.disconnect()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    _connections.clear()
