"""Great Expectations, imported without PySpark unless the Spark engine is already running.

GX's compatibility layer (``great_expectations.compatibility.pyspark``) imports PySpark whenever it is
installed, and PySpark announces itself on import: a FutureWarning about pandas 3 and grpc messages, on
every default (DuckDB) run, for a gate that only ever validates pandas batches. So GX is imported here,
once, with ``pyspark`` blocked for the duration of that import (GX then takes it as not installed);
every module of the gate takes ``gx`` and ``ExpectationSuite`` from here, never from GX directly.

When the Spark engine is chosen (``--env spark``: :class:`ccss_pipeline.hooks.SparkHooks` builds the
session before any node runs), PySpark is already imported and GX is imported as it is.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

SPARK_PACKAGE = "pyspark"


def import_great_expectations() -> ModuleType:
    """``great_expectations``, imported with ``pyspark`` unimportable unless it is already loaded."""
    if "great_expectations" in sys.modules or SPARK_PACKAGE in sys.modules:
        return importlib.import_module("great_expectations")
    sys.modules[SPARK_PACKAGE] = None  # type: ignore[assignment]  # `import pyspark` raises ImportError
    try:
        return importlib.import_module("great_expectations")
    finally:
        if sys.modules.get(SPARK_PACKAGE, ...) is None:
            del sys.modules[SPARK_PACKAGE]


gx = import_great_expectations()

from great_expectations.core import ExpectationSuite  # noqa: E402 - after the guarded import above

__all__ = ["ExpectationSuite", "gx", "import_great_expectations"]
