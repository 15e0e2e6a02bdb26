"""The ``schema`` and ``data_validation`` parameters: what the raw tables hold and the gate's rules.

Kept apart from the training blocks because they describe the data, not the method: the data layer
reads these two models and nothing else of the configuration.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ccss_pipeline.config.base import StrictConfig


def _parse_timestamp_setting(value: str, field: str) -> str:
    """A timestamp bound must parse (pandas ``Timestamp``); refused here rather than at the gate."""
    import pandas as pd

    try:
        parsed = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{field} must be a date or date-time like '2000-01-01', got {value!r} ({exc})") from exc
    if parsed is pd.NaT:
        raise ValueError(f"{field} must be a date or date-time like '2000-01-01', got {value!r}")
    return value


def _utc_ns(value: str) -> int:
    """A timestamp bound as nanoseconds since the epoch: a bound with a timezone (``2000-01-01T00:00:00Z``)
    is converted to UTC, one without is taken as UTC, as the gate reads both; so any two bounds compare
    (a naive and an aware ``Timestamp`` do not: TypeError)."""
    import pandas as pd

    return int(pd.Timestamp(value).value)


def _check_timestamp_format(value: str) -> str:
    """``schema.timestamp_format`` must be a format the timestamp parser (pandas' ``to_datetime``) can
    use; refused here, naming the key, rather than as a raw error of the parser at the gate."""
    import pandas as pd

    how = "a strftime format with % directives, e.g. '%d/%m/%Y %H:%M'"
    if "%" not in value:
        raise ValueError(f"schema.timestamp_format {value!r} has no % directive: it must be {how}")
    try:
        pd.to_datetime(pd.Series(["2001-02-03"]), format=value, errors="coerce", utc=True)
    except Exception as exc:  # ValueError ('Q' is a bad directive), re.error (a repeated directive), ...
        raise ValueError(f"schema.timestamp_format {value!r} cannot be used ({exc}): it must be {how}") from exc
    return value


#: Columns the pipeline adds to the canonical interaction table under these names (``ccss_pipeline.spec``,
#: ``data.interactions``): a feature of the same name would be replaced by them, or replace them, silently.
#: Names starting with ``__`` are the engine's temporary columns.
RESERVED_COLUMNS = ("user", "item", "label", "event_ts", "group_id", "oracle_prob", "split", "row")


def _not_reserved(name: str) -> str:
    """A feature may not be named like a column the pipeline adds (a categorical ``row`` was silently
    replaced by each row's position); checked per name, so the error names its key."""
    if name in RESERVED_COLUMNS or name.startswith("__"):
        raise ValueError(
            f"{name!r} is a canonical column the pipeline adds itself ({', '.join(RESERVED_COLUMNS)}; names "
            "starting with '__' are its temporary columns): a feature of that name would be silently replaced "
            "by it. Rename the column in your data (or the log feature) and declare it under the new name"
        )
    return name


#: A feature's name: any column name but :data:`RESERVED_COLUMNS`.
FeatureName = Annotated[str, AfterValidator(_not_reserved)]


def _parse_direction(value: object) -> int:
    """Accept +1 / -1 / 1 / "none" / null / 0 and nothing else."""
    if value is None or (isinstance(value, str) and value.strip().lower() in {"none", "0", ""}):
        return 0
    if isinstance(value, bool):
        raise ValueError(f"direction must be +1, -1 or none, got {value!r}")
    if isinstance(value, (int, float)) and value in (1, -1, 0):
        return int(value)
    if isinstance(value, str) and value.strip() in {"+1", "1", "-1"}:
        return int(value.strip())
    raise ValueError(f"direction must be +1, -1 or none, got {value!r}")


class NumericalColumn(StrictConfig):
    """A numerical input column of the joined interaction table."""

    name: FeatureName
    direction: int = 0
    transform: Literal["log1p", "identity"] = "identity"
    count: bool = False  # a count must be >= 0 (validated)

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, value: object) -> int:
        return _parse_direction(value)


class LogFeature(StrictConfig):
    """A leak-free numerical feature derived from the log itself (only events strictly before)."""

    name: FeatureName
    entity: Literal["user", "item"]
    stat: Literal["impressions", "clicks", "smoothed_ctr", "active_days"]
    direction: int = 0
    transform: Literal["log1p", "identity"] = "identity"
    prior_strength: float = Field(20.0, ge=0)

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, value: object) -> int:
        return _parse_direction(value)


class SideTable(StrictConfig):
    """A side table joined onto the log by a key that must be unique in it."""

    key: str
    required: bool = False


class SchemaConfig(StrictConfig):
    """What the raw tables contain and which columns the model uses (``schema`` in parameters).

    ``timestamp_format`` (strftime, e.g. ``"%d/%m/%Y %H:%M"``) is needed for ``timestamp_unit:
    datetime`` values that are not ISO 8601: day-first and month-first dates cannot be told apart.
    """

    source: Literal["synthetic", "kuairand", "table"]
    label: str
    user: str | None = None  # optional: without it there is no GAUC (the report says so)
    item: str | None = None  # optional
    timestamp: str | None = None
    split_column: str | None = None  # a raw column naming each row's split (feature_engineering.split.mode: column)
    timestamp_unit: Literal["ms", "s", "datetime"] = "ms"
    timestamp_format: str | None = None
    categorical: list[FeatureName] = Field(default_factory=list)
    numerical: list[NumericalColumn] = Field(default_factory=list)
    log_features: list[LogFeature] = Field(default_factory=list)
    side_tables: dict[str, SideTable] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> SchemaConfig:
        names = self.categorical + [n.name for n in self.numerical] + [f.name for f in self.log_features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"schema declares these feature names more than once: {dupes}")
        if not self.numerical and not self.log_features:
            raise ValueError("schema declares no numerical feature: CCSS needs at least one")
        conflicts = self.role_conflicts()
        for i, feature in enumerate(self.log_features):
            if getattr(self, feature.entity) is None:
                conflicts.append(
                    f"schema.log_features[{i}] ({feature.name!r}) counts per {feature.entity}, but "
                    f"schema.{feature.entity} is not set: a per-{feature.entity} log feature needs that id"
                )
        if conflicts:
            raise ValueError("; ".join(conflicts))
        if self.timestamp_format is not None and self.timestamp_unit != "datetime":
            raise ValueError(
                "schema.timestamp_format applies to timestamp_unit: datetime only "
                f"(timestamp_unit is {self.timestamp_unit!r})"
            )
        return self

    @field_validator("timestamp_format")
    @classmethod
    def _usable_format(cls, value: str | None) -> str | None:
        return None if value is None else _check_timestamp_format(value)

    def role_conflicts(self) -> list[str]:
        """Columns used in two roles: a feature that is the label, the timestamp or an id leaks or
        duplicates it (a label declared as a feature gives test AUC 1.0), and the roles must differ."""
        roles = {"label": self.label}
        for role in ("user", "item", "timestamp", "split_column"):
            if getattr(self, role):
                roles[role] = getattr(self, role)
        problems = []
        names = list(roles)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if roles[a] == roles[b]:
                    problems.append(
                        f"schema.{a} and schema.{b} are the same column {roles[a]!r}: "
                        "the label, the ids and the timestamp must be different columns"
                    )
        by_column = {column: role for role, column in roles.items()}
        features = (
            [(f"schema.categorical[{i}]", c) for i, c in enumerate(self.categorical)]
            + [(f"schema.numerical[{i}].name", n.name) for i, n in enumerate(self.numerical)]
            + [(f"schema.log_features[{i}].name", f.name) for i, f in enumerate(self.log_features)]
        )
        for path, column in features:
            if column in by_column:
                role = by_column[column]
                why = "label leakage" if role == "label" else f"the {role} column is not a feature"
                problems.append(
                    f"{path} is {column!r}, the {role} column (schema.{role}): a feature may not be "
                    f"the label, the timestamp or an id ({why})"
                )
        return problems

    @property
    def all_numerical(self) -> list[NumericalColumn | LogFeature]:
        """Raw numerical columns followed by the derived log features."""
        return [*self.numerical, *self.log_features]


class ValidationConfig(StrictConfig):
    """Rules of the Great Expectations gate (``data_validation`` in parameters)."""

    timestamp_min: str = "2000-01-01"
    timestamp_max: str = "2100-01-01"
    max_offending_values: int = Field(5, ge=1)
    # share of log rows allowed to be duplicated impressions (same user, item, timestamp); GX ``mostly``.
    # The real KuaiRand log slice has 0.6% (mostly exact duplicate rows), so its parameters relax this.
    max_duplicate_impression_fraction: float = Field(0.0, ge=0, lt=1)
    # share of log rows whose key must be found in each side table (a left join leaves NaN otherwise)
    min_key_coverage: float = Field(1.0, ge=0, le=1)
    # sources read by the data engine are validated this many rows at a time (memory bounded by a batch)
    batch_rows: int = Field(1_000_000, ge=1)

    @field_validator("timestamp_min", "timestamp_max")
    @classmethod
    def _parseable(cls, value: str, info: object) -> str:
        return _parse_timestamp_setting(value, f"data_validation.{getattr(info, 'field_name', 'timestamp')}")

    @model_validator(mode="after")
    def _ordered(self) -> ValidationConfig:
        if not _utc_ns(self.timestamp_min) < _utc_ns(self.timestamp_max):
            raise ValueError(
                f"data_validation.timestamp_min ({self.timestamp_min}) must be before "
                f"timestamp_max ({self.timestamp_max})"
            )
        return self
