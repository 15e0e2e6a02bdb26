"""Which training log a model's scoring history is: its fingerprint, and the refusal of another log.

Scoring computes each new row's log features (prior impressions, clicks, click-through) from the
training log, the ``interactions`` table that ``data_validation`` writes. Rerunning ``data_validation``
on another table replaces that file but not the models, so the next ``score`` would silently read the
other table's history beside models fitted on the first. Feature engineering therefore stamps the
feature spec with the fingerprint of the log it was fitted beside (:attr:`FeatureSpec.history`), and
scoring compares it with the log it is handed.

The fingerprint is a hash of exact integer aggregates of what scoring reads (the ids, ``event_ts`` and
the label): the row count, the label sum, the time range, sums of the times and integer ids modulo a
prime, the distinct ids. Integers only, so DuckDB and Spark give the same value for the same rows, in
any order and partitioning; one aggregate query, a scan of the table.
"""

from __future__ import annotations

from typing import Any

import ibis
import pandas as pd

from ccss_pipeline.data.relational.interactions import ITEM, USER
from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN, FeatureSpec

#: Where the training log lives (the catalog's ``interactions``), for messages.
HISTORY_FILE = "data/02_intermediate/interactions.parquet"
#: Moduli of the position-free sums: each term stays below 10**6, so a sum over 10**12 rows fits int64.
_P, _Q = 1_000_003, 999_983


def _aggregates(table: ibis.Table) -> dict[str, Any]:
    """Exact integer aggregates of the columns scoring reads (see the module docstring)."""
    ts = table[TIME_COLUMN].cast("int64")
    label = table[LABEL_COLUMN].cast("int64")
    out: dict[str, Any] = {
        "rows": table.count(),
        "clicks": label.sum(),
        "first": ts.min(),
        "last": ts.max(),
        "times": (ts % _P).sum(),
        "clicked_times": ((ts % _Q) * label).sum(),
    }
    for name in (USER, ITEM):
        if name not in table.columns:
            continue
        column = table[name]
        out[f"{name}_distinct"] = column.nunique()
        if column.type().is_integer():
            out[f"{name}_sum"] = (column.cast("int64") % _P).sum()
    return out


def history_fingerprint(history: ibis.Table) -> str:
    """The fingerprint of a canonical training log (an engine table)."""
    row = history.aggregate(**_aggregates(history)).to_pandas().iloc[0]
    return content_hash({k: None if pd.isna(v) else int(v) for k, v in row.items()})


def require_history(spec: FeatureSpec, history: ibis.Table) -> None:
    """Raise :class:`StaleArtifactError` unless ``history`` is the log ``spec`` was fitted beside.

    Both fingerprints and both files are named, with the two ways out: retrain on the current log, or
    rerun ``data_validation`` on the training table."""
    found = history_fingerprint(history)
    if spec.history == found:
        return
    if spec.history is None:
        raise StaleArtifactError(
            f"the feature spec (data/04_feature/feature_spec.json) records no training-log fingerprint (it "
            f"was fitted before scoring checked its history), so 'interactions' ({HISTORY_FILE}, training log "
            f"{found}) cannot be told to be the log it was fitted beside. If it is, stamp the spec with "
            "`kedro run --pipelines=feature_engineering` (its fingerprint, hence the models, stay valid)."
        )
    raise StaleArtifactError(
        f"'interactions' ({HISTORY_FILE}) is training log {found}, but the feature spec "
        f"(data/04_feature/feature_spec.json) and the models trained with it were fitted beside training "
        f"log {spec.history}: `data_validation` was rerun on another table since training, and scoring "
        "would read that table's history for the log features. Retrain on it (`kedro run`), or rerun "
        "`kedro run --pipelines=data_validation` on the training table."
    )
