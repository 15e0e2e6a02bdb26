"""Fixtures of the data-stage tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def spark_session():
    """A local[2] SparkSession (skipped without pyspark or Java)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'ccss-pipeline[spark]')")
    import shutil

    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17: no `java` on PATH")
    from pyspark.sql import SparkSession

    from ccss_pipeline.data.relational.backends import use_this_python_for_spark_workers

    use_this_python_for_spark_workers()
    session = (
        SparkSession.builder.master("local[2]")
        .appName("ccss-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        # a short-lived test JVM on a small machine: the C1 compiler alone and a serial GC start and warm up
        # faster, and whole-stage code generation (a Janino compile per query) costs more than it saves on
        # these small tables (an execution strategy only: the same results); ~40% off the first Spark test
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    yield session
    session.stop()
