"""Typed parameters of every pipeline (pydantic models).

Node functions annotate their ``params:`` inputs with these models, so Kedro (>= 1.3) validates the
whole configuration before any node runs and a bad value fails with the key and the allowed values.
The same models are used directly by the plain library and its tests, without Kedro.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


class StrictConfig(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored); NaN and ±inf are refused everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: A random seed: numpy, torch and Optuna all accept 0 .. 2**32 - 1 (numpy's legacy seeding stops there).
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]

#: File name endings the Optuna SQLite storage may have.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


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


def _inside_data_folder(value: str, field: str) -> str:
    """A path from parameters must stay inside the project's data/ folder (relative, no "..", under data/)."""
    from pathlib import PurePosixPath, PureWindowsPath

    path = PurePosixPath(value.replace("\\", "/"))
    if (
        path.is_absolute()
        or PureWindowsPath(value).drive
        or ".." in path.parts
        or not path.parts
        or path.parts[0] != "data"
    ):
        raise ValueError(
            f"{field} must be a relative path inside the project's data/ folder "
            f"(e.g. 'data/06_models/...'; no '..', not absolute), got {value!r}"
        )
    return value


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


class SplitLabels(StrictConfig):
    """``mode: column``: the values of ``schema.split_column`` that name each split (compared as text).

    ``validation: null`` (or no row with that value): validation is carved from train, its last
    ``validation_fraction`` in time when the schema has a timestamp, else a seeded stratified share.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)  # `train: 0` is "0"

    train: str = "train"
    validation: str | None = "validation"
    test: str = "test"


class SplitConfig(StrictConfig):
    """How rows are split into train / validation / test.

    - ``time``: the latest ``test_fraction`` of events is test, the ``validation_fraction`` before it
      validation (needs ``schema.timestamp``);
    - ``row_order``: the same by the order of the rows in the file;
    - ``random``: a seeded random split, stratified by the label unless ``stratify: false``;
    - ``column``: ``schema.split_column`` names each row's split (values in ``labels``).
    """

    mode: Literal["time", "row_order", "random", "column"] = "time"
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    seed: Seed = 0
    stratify: bool = True
    labels: SplitLabels = SplitLabels()


class FeatureConfig(StrictConfig):
    """Feature engineering (``feature_engineering`` in parameters)."""

    split: SplitConfig = SplitConfig()
    n_buckets: int = Field(16, ge=2, le=1024)
    min_category_count: int = Field(2, ge=1)
    # dense standardization uses training values winsorized at these quantiles (q, 1 - q), so one
    # extreme value cannot squash every other value of its feature to the same dense input
    outlier_quantile: float = Field(0.001, ge=0, lt=0.5)
    # a directed feature left with one bucket cannot be constrained by CCSS: warn (log + report) or fail
    unconstrained_directed: Literal["warn", "fail"] = "warn"
    # a numerical feature with at most this many distinct training values is discrete (a count, days, a
    # rating): its observed values are kept in the spec, and the raw grid, the edge test and the
    # stratified counterfactual anchors use them instead of interpolated quantiles; 0 = never
    discrete_max_values: int = Field(200, ge=0, le=10_000)


class BackboneConfig(StrictConfig):
    """Which backbone and its size (spec §5)."""

    name: Literal["dnn", "wide_deep", "deepfm", "dcn_v2"] = "dnn"
    embedding_dim: int = Field(8, ge=1, le=256)
    hidden_units: list[Annotated[int, Field(ge=1, le=65536)]] = Field(default_factory=lambda: [128, 64], min_length=1)
    cross_layers: int = Field(2, ge=1, le=8)  # DCN-v2 only
    dropout: float = Field(0.0, ge=0, lt=1)
    embedding_init_std: float = Field(1e-2, gt=0)


class ContrastiveConfig(StrictConfig):
    """The CCSS loss (spec §4); ``weight`` = λ, 0 gives the plain BCE baseline."""

    loss: Literal["margin", "infonce", "bpr"] = "margin"
    weight: float = Field(1.0, ge=0)
    margin: float = Field(0.02, ge=0)
    temperature: float = Field(0.1, gt=0)
    anchor_on_original: bool = True
    pair_fraction: float = Field(1.0, gt=0, le=1)
    # Edge-aware moves (spec §3.6): the bucket-only and dense-only steps of a counterfactual path are
    # hinge-constrained with their own weight λ_e and margin (on logits); the centre move keeps λ and m.
    edge_weight: float = Field(2.0, ge=0)
    edge_margin: float = Field(0.003, ge=0)
    # a small table gets at least this many pairs per epoch (its pair_fraction raised, up to every row):
    # a fraction chosen for 200k rows leaves a 6,000-row table ~400 pairs an epoch, too few to reach
    # every edge; 0 = pair_fraction as it is
    min_pairs_per_epoch: int = Field(10_000, ge=0)

    def pair_fraction_for(self, n_rows: int) -> float:
        """The share of each batch with a pair when training on ``n_rows`` rows (``min_pairs_per_epoch``)."""
        if n_rows <= 0:
            return self.pair_fraction
        return max(self.pair_fraction, min(1.0, self.min_pairs_per_epoch / n_rows))


class OptimizerConfig(StrictConfig):
    """Optimisation budget shared by baseline and CCSS so the comparison is fair."""

    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(1024, ge=8)
    # a small table gets smaller batches so an epoch still takes at least this many optimiser steps
    # (never below 32 rows): 1,024-row batches give a 4,200-row training split 4 steps an epoch, and
    # its fits stop at the epoch budget undertrained; 0 = batch_size as it is
    min_batches_per_epoch: int = Field(50, ge=0)
    max_epochs: int = Field(8, ge=1, le=10_000)
    patience: int = Field(2, ge=0)  # in epochs: with several validations an epoch, patience × that many
    # validations of early stopping per epoch: fits that peak early (the default data peaks in epoch 1-2
    # and overfits after) are kept at their peak, not at the next epoch boundary. 1 = once, at its end
    validations_per_epoch: int = Field(1, ge=1, le=100)
    seed: Seed = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def batch_size_for(self, n_rows: int) -> int:
        """The batch size for a training split of ``n_rows`` rows (``min_batches_per_epoch``)."""
        if self.min_batches_per_epoch == 0 or n_rows <= 0:
            return self.batch_size
        return max(min(self.batch_size, 32), min(self.batch_size, n_rows // self.min_batches_per_epoch))


class ShapleyConfig(StrictConfig):
    """Monte-Carlo permutation Shapley importances that set CCSS's feature-draw probabilities (spec §3.1)."""

    n_samples: int = Field(2000, ge=10)  # validation rows explained
    n_permutations: int = Field(8, ge=1)
    epsilon: float = Field(1e-3, gt=0)  # floor on q_k so no drawable feature is never chosen
    seed: Seed = 0
    batch_size: int = Field(16384, ge=64)


#: Counterfactual moves (spec §3.2 and §3.6); see ``ccss_pipeline.model.moves``.
MoveName = Literal["centre", "within", "straddle", "edge", "path", "bracket", "decomposed"]


class PairsConfig(StrictConfig):
    """Counterfactual pair materialization (``counterfactual_pairs`` in parameters)."""

    warmup_epochs: int = Field(2, ge=1)  # the warm-up model Shapley importance is measured on
    move: MoveName = "decomposed"
    # share of pairs whose move starts from a value of the drawn feature drawn evenly over its buckets (a
    # discrete feature: over its observed values), the row's other features kept, instead of the row's
    # own value: every boundary and integer step gets constraints, not only where rows are. 0 = the paper
    anchor_share: float = Field(0.5, ge=0, le=1)
    shapley: ShapleyConfig = ShapleyConfig()
    seed: Seed = 11
    # training rows drawn per chunk (memory: one chunk); a table within one chunk draws with ``seed`` itself
    chunk_rows: int = Field(1_000_000, ge=1)


class SearchRange(StrictConfig):
    """A float search range; ``log`` samples on a log scale."""

    low: float
    high: float
    log: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"search range needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale search range needs low > 0, got {self.low}")
        return self


class PrunerConfig(StrictConfig):
    """Median-style pruning on per-epoch validation AUC that one epoch's noise cannot trigger.

    A trial stops after epoch ``e > n_warmup_steps`` only when its validation AUC is below the median of
    the finished trials at the same epoch by more than ``min_delta`` (and at least ``n_startup_trials``
    trials have finished). Optuna's own pruners do not support multi-objective studies.
    """

    enabled: bool = True
    n_startup_trials: int = Field(3, ge=1)
    n_warmup_steps: int = Field(1, ge=0)
    min_delta: float = Field(0.003, ge=0)


class SearchConfig(StrictConfig):
    """The Optuna study over λ and margin (and τ for losses that have one), one per backbone.

    Two objectives on validation: AUC (maximised) and the raw-grid wrong-step share (minimised). The
    chosen trial is the best AUC among those whose wrong-step share is at most ``max_violation`` and
    whose edge-test wrong share is at most ``max_edge_violation``.
    """

    n_trials: int = Field(8, ge=0)
    n_startup_trials: int = Field(3, ge=1)  # random trials before TPE models the front
    # the last trials of n_trials bisect λ (the chosen trial's other parameters kept) down to where the
    # targets stop holding: tuning/refinement.py. At most n_trials - n_startup_trials of them.
    refine_trials: int = Field(2, ge=0)
    timeout_s: float | None = Field(None, gt=0)
    seed: Seed = 0
    study_name: str = "ccss"
    storage_path: str = "data/06_models/optuna.db"
    max_epochs: int = Field(4, ge=1)  # per-trial budget; the final fit uses optimizer.max_epochs
    weight: SearchRange = SearchRange(low=0.1, high=10.0)
    margin: SearchRange = SearchRange(low=1e-3, high=0.1)
    temperature: SearchRange = SearchRange(low=0.05, high=1.0)
    learning_rate: SearchRange | None = None
    max_violation: float = Field(0.005, ge=0, le=1)  # target raw-grid wrong-step share on validation
    # ... and target validation edge-test wrong share (what a user moving a value across a bucket edge
    # sees); null: not a target. Both enter TPE as constraints (``constraints_func``) and the selection.
    max_edge_violation: float | None = Field(0.01, ge=0, le=1)
    # among the trials that meet both targets, the smallest λ whose validation AUC is within this of the
    # best of them is chosen (tuning/selection.py: validation AUC cannot see the AUC a stronger λ pays);
    # 0: the best validation AUC
    auc_tolerance: float = Field(0.0005, ge=0, le=1)
    # optional ranges of the edge constraints' weight (× λ) and margin and of the share of each batch
    # with a pair; null: the value in ``model_training.contrastive`` is used, not searched
    edge_weight: SearchRange | None = None
    edge_margin: SearchRange | None = None
    pair_fraction: SearchRange | None = None
    violation_rows: int = Field(1000, ge=100)  # validation rows the raw-grid share is measured on
    grid_levels: int = Field(100, ge=3, le=10_000)  # quantile levels of the validation raw grid
    pruner: PrunerConfig = PrunerConfig()
    # Several workers on one study (a database URL in the catalog's ``search_storage``): a worker that dies
    # stops its trial's heartbeat; after ``stale_after_s`` another worker fails that trial and runs it again
    # (up to ``max_retry`` times), so no trial is lost.
    heartbeat_s: int = Field(5, ge=1)
    stale_after_s: int = Field(30, ge=2)
    max_retry: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _stale_after_heartbeats(self) -> SearchConfig:
        if self.stale_after_s <= self.heartbeat_s:
            raise ValueError(
                f"search.stale_after_s ({self.stale_after_s}) must be longer than search.heartbeat_s "
                f"({self.heartbeat_s}): a live worker's trial would be failed between two heartbeats"
            )
        return self

    @model_validator(mode="after")
    def _pair_fraction_is_a_share(self) -> SearchConfig:
        if self.pair_fraction is not None and not 0 < self.pair_fraction.low < self.pair_fraction.high <= 1:
            raise ValueError(
                f"search.pair_fraction must lie in (0, 1], got low={self.pair_fraction.low}, "
                f"high={self.pair_fraction.high}"
            )
        return self

    @model_validator(mode="after")
    def _startup_below_trials(self) -> SearchConfig:
        if self.n_trials > 1 and self.n_startup_trials >= self.n_trials:
            raise ValueError(
                f"search.n_startup_trials ({self.n_startup_trials}) must be smaller than search.n_trials "
                f"({self.n_trials}): otherwise every trial is a random draw and the sampler never searches"
            )
        return self

    @field_validator("storage_path")
    @classmethod
    def _inside_data(cls, value: str) -> str:
        _inside_data_folder(value, "storage_path")
        if not value.lower().endswith(SQLITE_SUFFIXES):
            raise ValueError(
                f"storage_path must name an SQLite file ending in {', '.join(SQLITE_SUFFIXES)} "
                f"(e.g. 'data/06_models/optuna.db'), got {value!r}"
            )
        return value


class StreamingConfig(StrictConfig):
    """When training reads its split from parquet a row group at a time instead of holding it (issue 14).

    A training split of more than ``max_rows_in_memory`` rows is streamed through a seeded shuffle
    buffer of ``buffer_rows`` rows (pairs drawn per batch from the Shapley probabilities; validation
    scored a row group at a time); smaller ones take the in-memory fast path with the materialized
    pair table. ``max_rows_in_memory: 0`` always streams; ``null`` never does.
    """

    max_rows_in_memory: int | None = Field(5_000_000, ge=0)
    buffer_rows: int = Field(262_144, ge=1)


class DistributedConfig(StrictConfig):
    """The final fits on several processes with DistributedDataParallel (issue 14), started by torch's
    elastic launcher (what ``torchrun`` runs): ``nproc_per_node`` workers on this machine, ``nnodes``
    machines in all (each runs the same ``kedro run``; they meet at ``master_addr:master_port`` under
    ``run_id``). ``backend``: gloo on CPU, NCCL on GPU (``auto``). One process (the default) trains
    in the Kedro process itself.
    """

    nproc_per_node: int = Field(1, ge=1, le=64)
    nnodes: int = Field(1, ge=1)
    master_addr: str = "127.0.0.1"
    master_port: int = Field(29500, ge=0, le=65535)  # several machines only (one machine meets on a free loopback port)
    run_id: str = "ccss"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    timeout_s: int = Field(900, ge=10)  # how long the machines wait for each other

    @property
    def enabled(self) -> bool:
        return self.nproc_per_node * self.nnodes > 1


#: The monotonicity methods the trainer can use (``ccss_pipeline.model.methods``; issue 27).
MethodName = Literal["ccss", "pwl", "hints"]


class PwlConfig(StrictConfig):
    """``method: pwl``, the point-wise gradient penalty (Gupta et al. 2019): λ is ``contrastive.weight``;
    this block holds only the range the search draws λ from (a gradient has another scale than CCSS's
    hinge on logit differences, so it gets its own range)."""

    weight_range: SearchRange = SearchRange(low=0.1, high=10.0)


class HintsConfig(StrictConfig):
    """``method: hints``, monotonicity hints (Sill & Abu-Mostafa 1997): λ is ``contrastive.weight``.

    ``step``: the largest move of a hinted raw value, as a share of the feature's 1%–99% training
    quantile span (the move is uniform in (0, step]); ``step_range``: its search range (null: ``step``
    is used as it is); ``weight_range``: the range the search draws λ from.
    """

    step: float = Field(0.1, gt=0, le=1)
    weight_range: SearchRange = SearchRange(low=0.1, high=10.0)
    step_range: SearchRange | None = SearchRange(low=0.02, high=0.5)

    @model_validator(mode="after")
    def _step_range_is_a_share(self) -> HintsConfig:
        r = self.step_range
        if r is not None and not 0 < r.low < r.high <= 1:
            raise ValueError(f"hints.step_range must lie in (0, 1], got low={r.low}, high={r.high}")
        return self


class TrainingConfig(StrictConfig):
    """The ``model_training`` parameters: backbones, shared budget, CCSS loss and the search."""

    backbones: list[Literal["dnn", "wide_deep", "deepfm", "dcn_v2"]] = Field(default_factory=lambda: ["dnn"])  # type: ignore[arg-type]
    backbone: BackboneConfig = BackboneConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    # the term added to BCE with weight λ = contrastive.weight (ccss_pipeline.model.methods): ccss (the
    # counterfactual pairs), pwl (a gradient penalty on the dense inputs) or hints (random raw moves up);
    # the λ = 0 baselines are the same for all three
    method: MethodName = "ccss"
    pwl: PwlConfig = PwlConfig()
    hints: HintsConfig = HintsConfig()
    contrastive: ContrastiveConfig = ContrastiveConfig()
    redraw_pairs_each_epoch: bool = False
    n_seeds: int = Field(3, ge=1, le=100)  # final fits per backbone and variant: seeds optimizer.seed + i
    search: SearchConfig = SearchConfig()
    streaming: StreamingConfig = StreamingConfig()
    distributed: DistributedConfig = DistributedConfig()
    checkpoint_dir: str = "data/06_models/checkpoints"
    # a strictly increasing map of each final model's logit fitted on validation after training (CCSS and
    # baselines alike; ccss_pipeline.model.calibration): z / T, or a·z + b with a > 0 (Platt); it keeps
    # every ranking and every monotone direction and only moves the probabilities' level and spread
    recalibration: Literal["none", "temperature", "platt"] = "temperature"

    @field_validator("checkpoint_dir")
    @classmethod
    def _checkpoints_inside_data(cls, value: str) -> str:
        return _inside_data_folder(value, "checkpoint_dir")

    @model_validator(mode="after")
    def _seeds_in_range(self) -> TrainingConfig:
        last = self.optimizer.seed + self.n_seeds - 1
        if last > 2**32 - 1:
            raise ValueError(
                f"model_training.optimizer.seed + n_seeds - 1 = {last} exceeds the largest seed "
                f"{2**32 - 1}: lower optimizer.seed"
            )
        return self

    @field_validator("backbones")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("model_training.backbones must name at least one backbone")
        if len(set(value)) != len(value):
            raise ValueError(f"model_training.backbones lists a backbone twice: {value}")
        return value


class WhatIfConfig(StrictConfig):
    """What-if curves (``kedro run --pipelines=what_if``): test rows by position, or a seeded sample."""

    rows: list[Annotated[int, Field(ge=0)]] | None = None  # positions in the test split; null = a seeded sample
    n_rows: int = Field(5, ge=1, le=1000)
    seed: Seed = 0
    levels: int = Field(50, ge=3, le=10_000)  # quantile levels of each directed feature's training values

    @field_validator("rows")
    @classmethod
    def _some_rows(cls, value: list[int] | None) -> list[int] | None:
        """An empty list would draw no curve: the run would replace what_if.csv by an empty table beside
        the previous run's plots (and fail writing them)."""
        if value is not None and not value:
            raise ValueError(
                "evaluation.what_if.rows is an empty list: name at least one test-row position, or set it "
                "to null for a seeded sample of evaluation.what_if.n_rows rows"
            )
        return value


class EvaluationConfig(StrictConfig):
    """The ``evaluation`` parameters (spec §6)."""

    eps: float = Field(1e-6, ge=0)  # tolerance of the violation test, on probabilities
    grid_levels: int = Field(200, ge=3, le=10_000)  # quantile levels of the raw-value grid (headline)
    grid_rows: int = Field(2000, ge=10)  # seeded sample of test rows swept over the raw grid
    max_rows: int | None = Field(5000, ge=100)  # test rows for the bucket-centre sweeps; null = all
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    calibration_bins: int = Field(10, ge=2)
    threshold: float = Field(0.5, gt=0, lt=1)  # predicted probability at or above which a row is positive
    what_if: WhatIfConfig = WhatIfConfig()


#: The rows ``kedro run --pipelines=compare`` can put side by side (``ccss_pipeline.tuning.comparison``):
#: the λ = 0 network, the trainer's three methods, and two models monotone by construction.
ComparedMethod = Literal["baseline", "ccss", "pwl", "hints", "monotone_net", "gbdt"]
COMPARED_METHODS: tuple[ComparedMethod, ...] = ("baseline", "ccss", "pwl", "hints", "monotone_net", "gbdt")


class CompareConfig(StrictConfig):
    """The ``compare`` parameters: monotonicity methods under one protocol (issue 27).

    Every tuned row gets ``n_trials`` trials (null: ``model_training.search.n_trials``), chosen on
    validation only, then ``n_seeds`` final fits (seeds ``optimizer.seed + i``) measured on test. The
    studies live in ``storage_path`` (a file of their own: ``model_training``'s study file is that
    stage's DVC output), or in the shared database of the catalog's ``search_storage``."""

    methods: list[ComparedMethod] = Field(default_factory=lambda: list(COMPARED_METHODS))
    backbone: Literal["dnn", "wide_deep", "deepfm", "dcn_v2"] = "dnn"
    n_seeds: int = Field(5, ge=1, le=100)
    n_trials: int | None = Field(None, ge=0)
    storage_path: str = "data/06_models/optuna_compare.db"
    # the Lipschitz monotonic network's search space (the soft methods' is model_training's)
    monotone_net_learning_rate: SearchRange = SearchRange(low=1e-3, high=3e-2)
    monotone_net_lipschitz: SearchRange = SearchRange(low=0.1, high=10.0)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"compare.methods lists a method twice: {value}")
        if "baseline" not in value:
            raise ValueError(
                "compare.methods must include 'baseline': it is the reference of every row's ΔAUC and of the "
                f"networks' training time (got {value})"
            )
        return value

    @field_validator("storage_path")
    @classmethod
    def _sqlite_inside_data(cls, value: str) -> str:
        _inside_data_folder(value, "compare.storage_path")
        if not value.lower().endswith(SQLITE_SUFFIXES):
            raise ValueError(f"compare.storage_path must name an SQLite file ending in {', '.join(SQLITE_SUFFIXES)}")
        return value
