"""Where the Optuna studies live, as a catalog entry, so a shared database's URL comes from Kedro
credentials (``conf/local/credentials.yml``) and never from committed parameters."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from ccss_pipeline.tuning.study_storage import safe_url


class StudyStorageDataset(AbstractDataset[None, "str | None"]):
    """Loads as the database URL the search workers share, or ``None`` for the embedded SQLite file
    (``model_training.search.storage_path``). Read-only.

    ``credentials``: a Kedro credentials entry with ``url`` (or ``con``, as Kedro's SQL datasets name
    it), e.g. ``postgresql+psycopg://optuna:secret@db-host:5432/optuna``.
    """

    def __init__(self, credentials: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        credentials = credentials or {}
        url = credentials.get("url") or credentials.get("con")
        if credentials and not url:
            raise DatasetError(
                "StudyStorageDataset: the credentials entry has no 'url' (e.g. "
                "postgresql+psycopg://user:password@host:5432/optuna); it has "
                f"{sorted(credentials)}"
            )
        self._url: str | None = str(url) if url else None
        self.metadata = metadata

    def load(self) -> str | None:
        return self._url

    def save(self, data: Any) -> None:
        raise DatasetError("StudyStorageDataset is read-only")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"url": safe_url(self._url) if self._url else "embedded SQLite (search.storage_path)"}
