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


def stamp(frame: Any, spec: FeatureSpec) -> Any:
    """Record ``spec``'s fingerprint on a table: a frame in place (returned for chaining), an engine
    table wrapped in a :class:`StampedTable`."""
    if isinstance(frame, pd.DataFrame):
        frame.attrs[SPEC_KEY] = spec.fingerprint
        return frame
    return StampedTable(frame, {SPEC_KEY: spec.fingerprint})


def recorded(artifact: pd.DataFrame | ParquetTable | Mapping[str, Any] | object) -> str | None:
    """The fingerprint an artifact records, None when it records none (built before fingerprints):
    a table's attrs, a JSON record's key, or a record object's ``spec_fingerprint`` attribute."""
    if isinstance(artifact, (pd.DataFrame, ParquetTable)):
        value = artifact.attrs.get(SPEC_KEY)
    elif isinstance(artifact, Mapping):
        value = artifact.get(SPEC_KEY)
    else:
        value = getattr(artifact, SPEC_KEY, None)
    return None if value is None else str(value)


def require_spec(
    name: str, artifact: pd.DataFrame | ParquetTable | Mapping[str, Any] | object, spec: FeatureSpec, rebuild: str
) -> None:
    """Raise :class:`StaleArtifactError` unless ``artifact`` records ``spec``'s fingerprint.

    ``name`` is the catalog entry, ``rebuild`` the pipeline whose run rebuilds it. A table whose file
    cannot be read raises :class:`UnreadableTableError`, naming the file and that pipeline: this is
    where a stage first touches its inputs' footers.
    """
    try:
        found = recorded(artifact)
    except UnreadableTableError as exc:
        raise unreadable(exc.path, f"'{name}': {exc.reason}", rebuild) from exc
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
