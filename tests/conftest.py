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
os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown

import pytest  # noqa: E402

from tests.small_project import SHARED_USERS, start_shared_repro  # noqa: E402
from tests.support import background, postgres  # noqa: E402
from tests.support.trained_project import TrainedProject, build_trained_project  # noqa: E402

#: where the shared KuaiRand sample is looked for when neither the option nor the variable names it
KUAIRAND_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kuairand"
KUAIRAND_VARIABLE = "CCSS_KUAIRAND_DIR"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kuairand-dir",
        default=None,
        help=f"folder of the KuaiRand sample tables (default: ${KUAIRAND_VARIABLE}, else ../shared/data/kuairand)",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """mypy (a minute of one core) and the shared DVC project's first ``dvc repro`` (a few minutes): when
    a test that reads one is among those to run, start it now, to run beside the tests before it."""
    if session.config.option.collectonly:
        return
    if any(item.nodeid.endswith("test_architecture.py::test_mypy_is_clean") for item in session.items):
        background.start("mypy", background.MYPY)
    if any(item.nodeid.startswith(SHARED_USERS) and item.get_closest_marker("slow") for item in session.items):
        start_shared_repro()


def pytest_sessionfinish(session: pytest.Session) -> None:
    background.stop_all()


@pytest.fixture(scope="session")
def kuairand_dir(request: pytest.FixtureRequest) -> Path:
    """The KuaiRand sample folder: ``--kuairand-dir``, ``$CCSS_KUAIRAND_DIR``, or ``../shared/data/kuairand``
    beside the repository; the test is skipped, saying where it looked, when there is none."""
    chosen = request.config.getoption("--kuairand-dir") or os.environ.get(KUAIRAND_VARIABLE)
    folder = Path(chosen) if chosen else KUAIRAND_DEFAULT
    if not (folder / "log_like_hate_kcore15.tsv").is_file():
        pytest.skip(f"KuaiRand sample not found in {folder} (set --kuairand-dir or ${KUAIRAND_VARIABLE})")
    return folder


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


@pytest.fixture(scope="session")
def trained_build(tmp_path_factory: pytest.TempPathFactory) -> TrainedProject:
    """The small project after ``kedro run --pipeline=train`` (a subprocess, as a user runs it), built
    once per session and shared by the training, evaluation, scoring and export tests; tests that
    change it work on a copy."""
    return build_trained_project(tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="session")
def trained_project(trained_build: TrainedProject) -> Path:
    return trained_build.root
