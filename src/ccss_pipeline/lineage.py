"""Which feature spec an artifact was built for, and the refusal of one built for another.

Every artifact derived from the fitted feature spec (the model-ready tables, the Shapley importances,
the counterfactual pair table, the chosen search parameters, the trained models) records the spec's
fingerprint. A stage that reads such an artifact beside the current spec checks it: a table of bucket
ids from a 16-bucket spec read with an 8-bucket spec would index other features' embedding rows,
silently. Tables carry it in ``DataFrame.attrs`` (kept in the parquet metadata), JSON records as a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ccss_pipeline.parquet_table import ParquetTable, UnreadableTableError, unreadable
from ccss_pipeline.spec import FeatureSpec

#: Key of the fingerprint in a table's ``attrs`` and in JSON records.
SPEC_KEY = "spec_fingerprint"


class StaleArtifactError(ValueError):
    """An artifact was built for another feature spec; the message says which and how to rebuild it."""


@dataclass(frozen=True)
class StampedTable:
    """An engine table (an Ibis expression, which has no ``attrs``) with the attrs its dataset records;
    read back as a frame, the table carries them in ``DataFrame.attrs`` like any stamped frame."""

    table: Any
    attrs: dict[str, Any] = field(default_factory=dict)


def stamp(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Record ``spec``'s fingerprint on a frame, in place (returned for chaining)."""
    frame.attrs[SPEC_KEY] = spec.fingerprint
    return frame


def stamp_table(table: Any, spec: FeatureSpec) -> StampedTable:
    """Record ``spec``'s fingerprint on an engine table: wrapped in a :class:`StampedTable` (an engine
    table has no attrs of its own), which the catalog's table dataset writes into the parquet file."""
    return StampedTable(table, {SPEC_KEY: spec.fingerprint})


def recorded(record: Mapping[str, Any] | object) -> str | None:
    """The fingerprint a record holds, None when it holds none (built before fingerprints): a JSON
    record's key, or a record object's ``spec_fingerprint`` attribute. A table's: :func:`table_fingerprint`."""
    value = record.get(SPEC_KEY) if isinstance(record, Mapping) else getattr(record, SPEC_KEY, None)
    return None if value is None else str(value)


def table_fingerprint(table: pd.DataFrame | ParquetTable) -> str | None:
    """The fingerprint a table records in its attrs (a frame's, or a parquet file's metadata), None when it
    records none. Reading a parquet table's footer here raises :class:`UnreadableTableError` for a bad file."""
    value = table.attrs.get(SPEC_KEY)
    return None if value is None else str(value)


def require_spec(name: str, record: Mapping[str, Any] | object, spec: FeatureSpec, rebuild: str) -> None:
    """Raise :class:`StaleArtifactError` unless the record (:func:`recorded`) holds ``spec``'s fingerprint.

    ``name`` is the catalog entry, ``rebuild`` the pipeline whose run rebuilds it."""
    require_fingerprint(name, recorded(record), spec, rebuild)


def require_table_spec(name: str, table: pd.DataFrame | ParquetTable, spec: FeatureSpec, rebuild: str) -> None:
    """:func:`require_spec` for a table (:func:`table_fingerprint`). A table whose file cannot be read
    raises :class:`UnreadableTableError`, naming the file and ``rebuild``: this is where a stage first
    touches its inputs' footers."""
    try:
        found = table_fingerprint(table)
    except UnreadableTableError as exc:
        raise unreadable(exc.path, f"'{name}': {exc.reason}", rebuild) from exc
    require_fingerprint(name, found, spec, rebuild)


def require_fingerprint(name: str, found: str | None, spec: FeatureSpec, rebuild: str) -> None:
    """Raise :class:`StaleArtifactError` naming ``name`` and the pipeline ``rebuild`` unless ``found`` (the
    fingerprint the entry records, None for none) is ``spec``'s."""
    if found == spec.fingerprint:
        return
    what = (
        f"was built for another feature spec (fingerprint {found})" if found else "records no feature-spec fingerprint"
    )
    raise StaleArtifactError(
        f"'{name}' {what}, but 'feature_spec' (data/04_feature/feature_spec.json) has fingerprint "
        f"{spec.fingerprint}: it is stale and is not used. Rebuild it with `kedro run --pipelines={rebuild}` "
        "(or rebuild everything out of date with `dvc repro`)."
    )
