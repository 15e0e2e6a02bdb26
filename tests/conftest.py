"""Top-level test configuration: no telemetry or analytics from Kedro or Great Expectations, ever.

Set before any test module imports kedro or great_expectations.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "False"

import pytest  # noqa: E402

from tests.support import postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server for the shared-search tests: CI's (``CCSS_TEST_POSTGRES_URL``, started by
    ``.ci/run``), else a throwaway cluster started here; skipped, with the reason, where there is none."""
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver, extra 'postgres') is not installed")
    url = os.environ.get(postgres.URL_VARIABLE)
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="ccss-postgres-"))
    try:
        url = postgres.start(folder)
    except postgres.PostgresUnavailable as exc:
        postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield url
    finally:
        postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh database of its own on the test server (studies of different tests never mix)."""
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    return postgres.new_database(postgres_server, name)
