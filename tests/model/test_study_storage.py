"""Where the studies live: the embedded SQLite file, or a database URL from Kedro credentials."""

from __future__ import annotations

import socket

import optuna
import pytest
from kedro.io import DatasetError

from ccss_pipeline.config import SearchConfig
from ccss_pipeline.datasets import StudyStorageDataset
from ccss_pipeline.tuning.study_storage import SearchStorageError, open_storage, safe_url

URL = "postgresql+psycopg://optuna:s3cret@db.example:5432/optuna"


def test_the_dataset_gives_the_credentials_url_and_never_shows_the_password():
    dataset = StudyStorageDataset(credentials={"url": URL})
    assert dataset.load() == URL
    assert "s3cret" not in repr(dataset) and "db.example" in repr(dataset)
    assert StudyStorageDataset(credentials={"con": URL}).load() == URL  # Kedro's SQL datasets' key
    assert StudyStorageDataset().load() is None  # the embedded SQLite file
    with pytest.raises(DatasetError, match="no 'url'.*'user'"):
        StudyStorageDataset(credentials={"user": "optuna"})


def test_safe_url_masks_the_password():
    assert safe_url(URL) == "postgresql+psycopg://optuna:***@db.example:5432/optuna"
    assert safe_url("not a url") == "<unparseable URL>"


def test_an_unreachable_server_is_named_without_its_password(tmp_path):
    pytest.importorskip("psycopg")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://optuna:s3cret@127.0.0.1:{port}/optuna"
    with pytest.raises(SearchStorageError) as info:
        open_storage(tmp_path, SearchConfig(), url)
    message = str(info.value)
    assert f"127.0.0.1:{port}/optuna" in message and "s3cret" not in message
    assert "check that the server runs" in message


def test_the_embedded_storage_keeps_heartbeats_and_retries(tmp_path):
    storage = open_storage(tmp_path, SearchConfig(heartbeat_s=2, stale_after_s=7, max_retry=1))
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.get_heartbeat_interval() == 2 and storage.grace_period == 7
    assert storage.get_heartbeat_stale_trial_callback() is not None
    assert (tmp_path / SearchConfig().storage_path).exists()


def test_a_stale_period_shorter_than_the_heartbeat_is_refused():
    with pytest.raises(ValueError, match="stale_after_s .* must be longer than search.heartbeat_s"):
        SearchConfig(heartbeat_s=10, stale_after_s=5)
