"""Where the Optuna studies live: the embedded SQLite file, or a database several search workers share.

The storage runs Optuna's heartbeat (``search.heartbeat_s``), and a trial whose heartbeat has been
silent for ``search.stale_after_s`` is failed and queued again with its parameters (Optuna's
``RetryHeartbeatStaleTrialCallback``, at most ``search.max_retry`` times), so a killed worker loses no trial.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import optuna

from ccss_pipeline.config import SearchConfig

_SQLITE_MAGIC = b"SQLite format 3\x00"


class SearchStorageError(ValueError):
    """The study's database cannot be used; the message names the file (or URL) and what to do."""


def storage_url(root: Path, storage_path: str) -> str:
    """``sqlite:///<root>/<storage_path>``, refusing a folder or a file that is not an SQLite database."""
    path = Path(root) / storage_path
    if path.is_dir():
        raise SearchStorageError(
            f"{path}: model_training.search.storage_path names a folder, not an SQLite file "
            "(e.g. data/06_models/optuna.db)"
        )
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
        if head != _SQLITE_MAGIC:
            raise SearchStorageError(
                f"{path}: not an SQLite database (truncated or overwritten?); move it away "
                "or delete it to start the search afresh"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


#: What a message shows instead of a URL that does not parse (it may be all password).
UNPARSEABLE_URL = "<unparseable URL>"


def _credentials(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, user, password, the rest after the credentials) of ``url``, None without credentials.

    The credentials end at the *last* ``@``: a password with an unescaped ``@`` or ``:``
    (``optuna:pa@ss:word@host``) is all password, though a URL parser ends it at the first ``@`` and
    would take the rest for the host. A later ``@`` in the query only makes the mask longer."""
    scheme, _, rest = url.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if not at:
        return None
    user, _, password = userinfo.partition(":")
    return scheme, user, password, tail


def safe_url(url: str) -> str:
    """``url`` with its password masked, whatever characters it holds, for messages and logs; a URL that
    does not parse is never echoed (:data:`UNPARSEABLE_URL`)."""
    from sqlalchemy.engine import make_url

    try:
        make_url(url)
    except Exception:  # not a URL SQLAlchemy can parse: say so without echoing it
        return UNPARSEABLE_URL
    parts = _credentials(url)
    if parts is None:
        return url
    scheme, user, password, tail = parts
    return f"{scheme}://{user}{':***' if password else ''}@{tail}"


def redact(text: str, url: str | None) -> str:
    """``text`` (an error from the database driver) without ``url``'s password or any piece of it: a
    mis-split password reaches the driver as part of the host name, which its errors repeat."""
    parts = _credentials(url) if url else None
    if parts is None or not parts[2]:
        return text
    password = parts[2]
    pieces = {password, *(p for p in password.replace(":", "@").split("@") if len(p) >= 3)}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def _retry_without_worker(retry: Any) -> Any:
    """Optuna's retry callback, queueing the copy without the dead worker's attributes (its ``worker``
    would make the copy look dead again the moment another worker picks it up)."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        clean = copy.deepcopy(trial)
        clean.user_attrs = {}
        retry(study, clean)

    return callback


def open_storage(root: Path, search: SearchConfig, url: str | None = None) -> optuna.storages.RDBStorage:
    """The studies' RDB storage with Optuna's heartbeat and a retry of trials whose worker died.

    ``url``: a database URL shared by several workers (from the catalog's ``search_storage``, i.e. Kedro
    credentials); without it, the embedded SQLite file ``root / search.storage_path``. An error names
    the file, or the URL with its password masked.
    """
    where = safe_url(url) if url else str(Path(root) / search.storage_path)
    url = url or storage_url(root, search.storage_path)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9, stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = _retry_without_worker(
                optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=search.max_retry, inherit_intermediate_values=False
                )
            )
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=search.heartbeat_s,
                grace_period=search.stale_after_s,
                heartbeat_stale_trial_callback=retry,
            )
    except Exception as exc:  # sqlalchemy.exc.DatabaseError, OperationalError (server down) and friends
        raise SearchStorageError(
            f"{where}: cannot be opened as the Optuna study database "
            f"({type(exc).__name__}: {redact(str(exc).splitlines()[0], url)[:200]}); "
            + (
                "check that the server runs and the credentials are right"
                if url.startswith(("postgres", "mysql"))
                else "move it away or delete it to start the search afresh"
            )
        ) from exc
