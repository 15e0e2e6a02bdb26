"""The data_validation and feature_engineering pipelines: node functions, and Kedro runs end to end.

End-to-end runs copy the project's conf/ into a temporary project (tests/kedro_project.py) and run
``data_validation`` + ``feature_engineering`` through a real ``KedroSession``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import FeatureConfig, SchemaConfig, ValidationConfig
from ccss_pipeline.data.relational.in_memory import in_memory
from ccss_pipeline.data.sources import synthetic_bundle
from ccss_pipeline.data.synthetic import SyntheticConfig
from ccss_pipeline.data.validation import DataValidationError, ValidationReport
from ccss_pipeline.pipelines.data_validation.nodes import (
    gate,
    gate_and_join,
    validate_raw_source,
    validate_split,
)
from ccss_pipeline.pipelines.feature_engineering.nodes import (
    engineer_log_features,
    fit_features,
    make_model_input,
    split_interactions,
)
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN, FeatureSpec
from tests.kedro_project import REPO, SMALL_SYNTHETIC, SPLITS, downstream_files, make_project, run_pipelines
from tests.support.own_table import own_table, write_own


def _schema(env: str) -> SchemaConfig:
    return SchemaConfig(**yaml.safe_load((REPO / "conf" / env / "parameters_schema.yml").read_text())["schema"])


def _conf_directions(env: str) -> dict[str, int]:
    return {f.name: f.direction for f in _schema(env).all_numerical}


# =====================================================================================================
# Node functions (no Kedro)
# =====================================================================================================


@pytest.fixture(scope="module")
def bundle() -> dict[str, pd.DataFrame]:
    return synthetic_bundle(SyntheticConfig(n_users=80, n_videos=120, n_days=5, impressions_per_user_day=3.0, seed=2))


@pytest.fixture(scope="module")
def base_schema() -> SchemaConfig:
    return _schema("base")


@pytest.fixture(scope="module")
def raw_report(bundle, base_schema):
    return validate_raw_source(bundle, base_schema, ValidationConfig())


def test_validate_raw_source_node_passes_good_data(raw_report):
    payload, markdown = raw_report.to_dict(), raw_report.to_markdown()
    assert payload["success"] is True and payload["error_message"] == ""
    json.dumps(payload, allow_nan=False)
    assert "PASSED" in markdown and set(payload["tables"]) >= {"log", "users", "videos"}


def test_validate_raw_source_node_reports_bad_data(bundle, base_schema):
    bad = dict(bundle)
    bad["log"] = bundle["log"].copy()
    bad["log"].loc[3, "is_click"] = 2
    bad["log"].attrs["origin"] = "bad_log_file.csv"
    report = validate_raw_source(bad, base_schema, ValidationConfig())
    payload, markdown = report.to_dict(), report.to_markdown()
    assert payload["success"] is False
    assert "bad_log_file.csv" in payload["error_message"] and "is_click" in payload["error_message"]
    assert "label in {0, 1}" in payload["error_message"] and "FAILED" in markdown
    with pytest.raises(DataValidationError, match="label in"):
        gate_and_join(bad, ValidationReport.from_dict(payload), base_schema)  # as the catalog loads it


def test_gate(raw_report):
    gate(raw_report)
    failed = ValidationReport(success=False, title="Boom")
    with pytest.raises(DataValidationError, match="Boom FAILED"):
        gate(failed)


@pytest.fixture(scope="module")
def interactions(bundle, raw_report, base_schema) -> pd.DataFrame:
    return gate_and_join(bundle, raw_report, base_schema)


def test_gate_and_join_node(interactions, bundle, base_schema):
    assert len(interactions) == len(bundle["log"])
    assert interactions[TIME_COLUMN].is_monotonic_increasing
    assert {"user", "item", LABEL_COLUMN, *base_schema.categorical} <= set(interactions.columns)
    assert {n.name for n in base_schema.numerical} <= set(interactions.columns)


def test_feature_nodes_chain(interactions, base_schema):
    features = FeatureConfig(n_buckets=8)
    with_logs = engineer_log_features(in_memory(interactions), base_schema)  # frames enter as engine tables
    assert {f.name for f in base_schema.log_features} <= set(with_logs.columns)
    train, valid, test = split_interactions(with_logs, features)
    tr, va, te = (split.to_pandas() for split in (train, valid, test))
    assert tr[TIME_COLUMN].max() < va[TIME_COLUMN].min() <= va[TIME_COLUMN].max() < te[TIME_COLUMN].min()
    report = validate_split(train, valid, test)
    assert report.success is True, report.error_message()
    spec = fit_features(train, report, base_schema, features)
    assert isinstance(spec, FeatureSpec)
    assert {f.name: f.direction for f in spec.numerical} == _conf_directions("base")
    for split, rows in ((train, tr), (valid, va), (test, te)):
        out = make_model_input(split, spec).table.to_pandas()
        assert len(out) == len(rows) and out["num__hist_ctr"].notna().all()


def test_fit_features_is_gated_by_the_split_report(interactions, base_schema):
    train = interactions.iloc[:100].assign(**{LABEL_COLUMN: np.int8(0)})
    report = validate_split(*map(in_memory, (train, interactions.iloc[100:150], interactions.iloc[150:200])))
    assert report.success is False
    assert "both classes present" in report.error_message() and "train" in report.error_message()
    with pytest.raises(DataValidationError, match="both classes present"):
        fit_features(engineer_log_features(in_memory(train), base_schema), report, base_schema, FeatureConfig())


def test_validate_split_rejects_empty_split(interactions):
    report = validate_split(*map(in_memory, (interactions.iloc[:100], interactions.iloc[:0], interactions.iloc[100:])))
    assert report.success is False and "split not empty" in report.error_message()
    assert "validation_interactions.parquet" in report.error_message()


# =====================================================================================================
# Kedro end to end
# =====================================================================================================


def _check_model_ready(root: Path, env: str, source: str, has_oracle: bool) -> FeatureSpec:
    reporting = root / "data" / "08_reporting"
    for name in ("raw_validation", "split_validation"):
        assert (reporting / f"{name}.md").is_file()
        assert json.loads((reporting / f"{name}.json").read_text())["success"] is True
    spec = FeatureSpec.from_dict(json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text()))
    assert spec.source == source and spec.has_oracle is has_oracle
    assert {f.name: f.direction for f in spec.numerical} == _conf_directions(env)
    assert [f.name for f in spec.numerical] == [f.name for f in _schema(env).all_numerical]
    expected = {"label", "group_id", "event_ts", *(c.column for c in spec.categorical)}
    expected |= {c for n in spec.numerical for c in (n.dense_column, n.bucket_column)}
    frames = {}
    for split in SPLITS:
        frame = pd.read_parquet(root / "data" / "05_model_input" / f"{split}.parquet")
        assert expected <= set(frame.columns), sorted(expected - set(frame.columns))
        assert ("oracle_prob" in frame.columns) is has_oracle
        assert len(frame) > 0 and frame["label"].isin([0, 1]).all()
        for n in spec.numerical:
            assert np.isfinite(frame[n.dense_column]).all()
            assert frame[n.bucket_column].between(0, n.missing_bucket).all()
        for c in spec.categorical:
            assert frame[c.column].between(0, c.vocab_size - 1).all()
        frames[split] = frame
    assert frames["train"]["event_ts"].max() < frames["validation"]["event_ts"].min()
    assert frames["validation"]["event_ts"].max() < frames["test"]["event_ts"].min()
    assert frames["train"]["label"].nunique() == 2
    return spec


@pytest.mark.slow
def test_synthetic_default_end_to_end(tmp_path):
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    run_pipelines(root)
    spec = _check_model_ready(root, "base", source="synthetic", has_oracle=True)
    assert {f.name: f.direction for f in spec.directed} == {"hist_ctr": 1, "user_active_days": 1, "duration_ms": -1}
    assert "PASSED" in (root / "data" / "08_reporting" / "raw_validation.md").read_text()
    leftovers = [p for p in (root / "data").rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []


@pytest.mark.slow
def test_kuairand_env_end_to_end(tmp_path, kuairand_dir):
    root = make_project(tmp_path / "project")
    try:
        run_pipelines(root, env="kuairand", runtime_params={"kuairand_dir": str(kuairand_dir)})
    except DataValidationError as exc:
        failures = [line for line in str(exc).splitlines() if line.startswith("  - ")]
        if failures and all("no duplicated impressions" in line for line in failures):
            raise AssertionError(
                f"the KuaiRand env must tolerate the log's 247 duplicated impressions:\n{exc}"
            ) from exc
        raise
    inter = pd.read_parquet(root / "data" / "02_intermediate" / "interactions.parquet")
    # 124 repeated rows (same user, video, ms) collapse to one each; every other impression is kept
    assert len(inter) == 41_828 - 124
    assert not inter.duplicated(["user", "item", "event_ts"]).any()
    raw = json.loads((root / "data" / "08_reporting" / "raw_validation.json").read_text())
    assert raw["success"] is True and raw["tables"]["log"]["rows"] == 41_828
    spec = _check_model_ready(root, "kuairand", source="kuairand", has_oracle=False)
    assert {f.name for f in spec.directed} == {"video_prior_ctr", "user_prior_ctr", "user_prior_active_days"}


# ---------------------------------------------------------------- own_table environment


@pytest.mark.slow
def test_own_table_env_end_to_end(tmp_path):
    root = make_project(tmp_path / "project")
    table = own_table()
    write_own(root, table)
    run_pipelines(root, env="own_table")
    spec = _check_model_ready(root, "own_table", source="table", has_oracle=False)
    assert {f.name: f.direction for f in spec.directed} == {"item_rating": 1, "item_price": -1, "item_prior_ctr": 1}
    inter = pd.read_parquet(root / "data" / "02_intermediate" / "interactions.parquet")
    first = pd.Timestamp(table["event_time"].min(), tz="UTC").value // 10**6
    assert len(inter) == 900 and inter["event_ts"].min() == first


@pytest.mark.slow
def test_own_table_path_as_runtime_param(tmp_path):
    root = make_project(tmp_path / "project")
    elsewhere = tmp_path / "mine.tsv"
    own_table(400, seed=1).to_csv(elsewhere, sep="\t", index=False)
    run_pipelines(root, env="own_table", runtime_params={"table_path": str(elsewhere)})
    assert len(pd.read_parquet(root / "data" / "02_intermediate" / "interactions.parquet")) == 400


def _mutate(**cells):
    """A mutation setting column -> value on a few rows (object dtype so strings and NaN fit)."""

    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        for column, value in cells.items():
            frame[column] = frame[column].astype(object)
            frame.loc[[5, 40, 300], column] = value
        return frame

    return apply


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[10, 20]]]).sort_values("event_time", kind="stable")


# (id, mutation of the good table, column named, rule named)
VALIDATION_FAILURES = [
    ("missing-label-column", lambda f: f.drop(columns=["clicked"]), "clicked", "column exists"),
    ("missing-feature-column", lambda f: f.drop(columns=["item_price"]), "item_price", "column exists"),
    ("label-2", _mutate(clicked=2), "clicked", "label in {0, 1}"),
    ("label-minus-1", _mutate(clicked=-1), "clicked", "label in {0, 1}"),
    ("label-yes", _mutate(clicked="yes"), "clicked", "label in {0, 1}"),
    ("null-user-id", _mutate(user_id=np.nan), "user_id", "id not null"),
    ("negative-count", _mutate(item_price=-3.0), "item_price", "count >= 0"),
    ("nan-numerical", _mutate(item_rating=np.nan), "item_rating", "values finite (no NaN)"),
    ("inf-numerical", _mutate(item_rating=np.inf), "item_rating", "values finite (no ±inf)"),
    ("timestamp-out-of-range", _mutate(event_time="1970-01-02 00:00:00"), "event_time", "timestamp in range"),
    ("timestamp-unparseable", _mutate(event_time="yesterday-ish"), "event_time", "timestamp parseable"),
    ("duplicated-impression", _duplicate, "user_id, item_id, event_time", "no duplicated impressions"),
]


def _own_validation() -> ValidationConfig:
    path = REPO / "conf" / "own_table" / "parameters_data_validation.yml"
    return ValidationConfig(**yaml.safe_load(path.read_text())["data_validation"])


@pytest.mark.parametrize(
    ("mutation", "column", "rule"), [c[1:] for c in VALIDATION_FAILURES], ids=[c[0] for c in VALIDATION_FAILURES]
)
def test_bad_own_table_fails_at_the_raw_gate(tmp_path, mutation, column, rule):
    """The own_table environment's source and raw gate, node by node: the report and the error name the
    file, the column and the rule, and the join refuses to run."""
    from ccss_pipeline.datasets import TableSourceDataset

    path = write_own(tmp_path, mutation(own_table()))
    source = TableSourceDataset(filepath=str(path)).load()
    schema = _schema("own_table")
    report = validate_raw_source(source, schema, _own_validation())
    assert report.success is False
    markdown = report.to_markdown()
    assert "FAILED" in markdown and rule in markdown
    with pytest.raises(DataValidationError) as info:
        gate_and_join(source, report, schema)
    message = str(info.value)
    assert str(path) in message, message
    assert f"column '{column}'" in message, message
    assert rule in message, message


@pytest.mark.slow
@pytest.mark.parametrize("case", ["label-2", "duplicated-impression"])
def test_a_bad_own_table_stops_the_kedro_run_with_its_report_written_and_nothing_downstream(tmp_path, case):
    """Two of the cases above through ``kedro run --env own_table``: the same error, the report on disk,
    no file of a later stage (the rules themselves are checked node by node above)."""
    _, mutation, column, rule = next(c for c in VALIDATION_FAILURES if c[0] == case)
    root = make_project(tmp_path / "project")
    path = write_own(root, mutation(own_table()))
    with pytest.raises(DataValidationError) as info:
        run_pipelines(root, env="own_table")
    message = str(info.value)
    assert str(path) in message and f"column '{column}'" in message and rule in message, message
    report = root / "data" / "08_reporting" / "raw_validation.md"
    assert report.is_file(), "the validation report must be written even when the data fail"
    assert "FAILED" in report.read_text() and rule in report.read_text()
    assert json.loads((root / "data" / "08_reporting" / "raw_validation.json").read_text())["success"] is False
    assert downstream_files(root) == []


LOAD_FAILURES = [
    ("empty-file", b"", "empty"),
    ("wrong-delimiter", b"user_id|item_id|event_time|clicked\n1|2|2023-03-01 00:00:00|1\n", "wrong delimiter"),
    (
        "non-utf8",
        "user_id,item_id,event_time,clicked,item_category\n1,2,2023-03-01 00:00:00,1,b\xe4cher\n".encode("latin-1"),
        "UTF-8",
    ),
    ("ragged-row", b"user_id,item_id,event_time,clicked\n1,2,2023-03-01 00:00:00,1\n1,2,3,4,5,6\n", "parsed"),
]


@pytest.mark.parametrize(("raw", "needle"), [c[1:] for c in LOAD_FAILURES], ids=[c[0] for c in LOAD_FAILURES])
def test_unreadable_own_table_fails_at_load(tmp_path, raw, needle):
    """The own_table environment's source dataset refuses a file it cannot read, naming it."""
    from kedro.io import DatasetError

    from ccss_pipeline.datasets import TableSourceDataset

    path = write_own(tmp_path, raw=raw)
    with pytest.raises(DatasetError) as info:
        TableSourceDataset(filepath=str(path)).load()
    message = str(info.value)
    assert str(path) in message and needle in message, message


@pytest.mark.slow
def test_an_unreadable_own_table_stops_the_kedro_run_before_validation(tmp_path):
    from kedro.io import DatasetError

    _, raw, needle = LOAD_FAILURES[1]
    root = make_project(tmp_path / "project")
    path = write_own(root, raw=raw)
    with pytest.raises(DatasetError) as info:
        run_pipelines(root, env="own_table")
    message = str(info.value)
    assert str(path) in message and needle in message, message
    assert not (root / "data" / "08_reporting" / "raw_validation.md").exists()  # failed before validation
    assert downstream_files(root) == []


@pytest.mark.slow
def test_one_class_train_split_fails_at_the_split_gate(tmp_path):
    frame = own_table()
    frame["clicked"] = (np.arange(len(frame)) >= 0.8 * len(frame)).astype(int)  # no click in the first 80%
    root = make_project(tmp_path / "project")
    write_own(root, frame)
    with pytest.raises(DataValidationError) as info:
        run_pipelines(root, env="own_table")
    message = str(info.value)
    assert "both classes present" in message and "train" in message and "column 'label'" in message, message
    assert json.loads((root / "data" / "08_reporting" / "raw_validation.json").read_text())["success"] is True
    split_md = (root / "data" / "08_reporting" / "split_validation.md").read_text()
    assert "FAILED" in split_md and "both classes present" in split_md
    assert not (root / "data" / "04_feature" / "feature_spec.json").exists()
    assert list((root / "data" / "05_model_input").iterdir()) == []


@pytest.mark.slow
def test_own_table_mixed_iso_timestamps_that_pass_the_gate_also_join(tmp_path):
    """The gate parses datetimes with a ``format="mixed"`` fallback and accepts a column mixing
    ``2023-03-01 00:39:23`` and ``2023-03-01T00:39:23Z``; the join must not then crash on it."""
    table = own_table()
    table.loc[::2, "event_time"] = table.loc[::2, "event_time"].str.replace(" ", "T") + "Z"
    root = make_project(tmp_path / "project")
    write_own(root, table)
    run_pipelines(root, env="own_table")
    assert json.loads((root / "data" / "08_reporting" / "raw_validation.json").read_text())["success"] is True
    assert len(pd.read_parquet(root / "data" / "02_intermediate" / "interactions.parquet")) == len(table)
