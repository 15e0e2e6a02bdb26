"""Issue 12 item 3: a fixed split of one's own data (``feature_engineering.split.mode``).

Modes: ``time`` (unchanged), ``row_order`` (file order), ``random`` (seeded, stratified) and ``column``
(``schema.split_column`` names each row's split, reproduced row for row; validation carved from train when
there is none), separate files per split through ``TableSourceDataset(split_files=...)``, and the
configuration mismatches that must fail before any work. Unit level except one end-to-end own_table run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DatasetError

from ccss_pipeline.config import FeatureConfig, SchemaConfig, SplitConfig, SplitLabels
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.splitting import SplitColumnError, SplitConfigError, split_config_problems
from ccss_pipeline.datasets import TableSourceDataset
from ccss_pipeline.spec import LABEL_COLUMN, SPLIT_COLUMN, TIME_COLUMN
from tests.kedro_project import REPO, SPLITS, make_project, run_pipelines
from tests.support.frame_stages import split_interactions
from tests.support.raw_tables import validate_split_frames as validate_split  # frames in
from tests.support.split_reference import split_by_time, split_rows

OWN_SCHEMA = yaml.safe_load((REPO / "conf" / "own_table" / "parameters_schema.yml").read_text())["schema"]


def _schema(timestamp: str | None = "ts", split_column: str | None = "fold", **extra) -> SchemaConfig:
    """A small table schema whose numerical feature ``rid`` is the row id (a unique id to compare by)."""
    return SchemaConfig(
        source="table",
        label="clicked",
        user="user_id",
        item="item_id",
        timestamp=timestamp,
        split_column=split_column,
        numerical=[{"name": "rid"}],
        **extra,
    )


def _features(mode: str, **split) -> FeatureConfig:
    return FeatureConfig(split=SplitConfig(mode=mode, **split))


def _log(n: int = 600, seed: int = 0, folds: list[str] | None = None) -> pd.DataFrame:
    """A raw log: unique millisecond timestamps in shuffled file order, both classes, a ``fold`` column."""
    rng = np.random.default_rng(seed)
    ts = rng.permutation(n) * 1000 + 1_600_000_000_000
    fold = folds if folds is not None else list(rng.choice(["train", "validation", "test"], n, p=[0.6, 0.2, 0.2]))
    return pd.DataFrame(
        {
            "rid": np.arange(n),
            "user_id": rng.integers(0, 40, n),
            "item_id": rng.integers(0, 60, n),
            "ts": ts,
            "clicked": (np.arange(n) % 3 == 0).astype(int),
            "fold": fold,
        }
    )


def _rids(frame: pd.DataFrame) -> list[int]:
    return sorted(frame["rid"].astype(int))


def _canonical(n: int, label_rate: float = 0.3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "rid": np.arange(n),
            LABEL_COLUMN: (rng.random(n) < label_rate).astype(np.int8),
            TIME_COLUMN: np.arange(n, dtype=np.int64),
        }
    )


# ------------------------------------------------------------------------------------------ time
def test_time_mode_is_the_previous_time_split():
    frame = build_interactions({"log": _log()}, _schema(split_column=None))
    expected = split_by_time(frame, SplitConfig())
    got = split_interactions(frame, _features("time"), _schema(split_column=None))
    for a, b in zip(expected, got, strict=True):
        pd.testing.assert_frame_equal(a, b)
    tr, va, te = got
    assert tr[TIME_COLUMN].max() < va[TIME_COLUMN].min() <= va[TIME_COLUMN].max() < te[TIME_COLUMN].min()
    assert split_interactions(frame, FeatureConfig())[0].equals(tr)  # library call without a schema: time


# ------------------------------------------------------------------------------------- row order
def test_row_order_splits_by_the_order_of_rows_in_the_file():
    raw = _log(1000)  # its timestamps are shuffled: row order and time order differ
    schema = _schema(timestamp=None, split_column=None)
    frame = build_interactions({"log": raw}, schema)
    assert frame[TIME_COLUMN].tolist() == list(range(1000))  # event_ts is the row number
    tr, va, te = split_interactions(frame, _features("row_order", validation_fraction=0.1, test_fraction=0.2), schema)
    assert tr["rid"].astype(int).tolist() == list(range(700))
    assert va["rid"].astype(int).tolist() == list(range(700, 800))
    assert te["rid"].astype(int).tolist() == list(range(800, 1000))


def test_row_order_follows_event_ts_and_equals_the_time_split_on_distinct_values():
    frame = _canonical(500).iloc[::-1].reset_index(drop=True)  # given in reverse: event_ts decides
    cfg = SplitConfig(mode="row_order")
    for a, b in zip(split_rows(frame, cfg), split_by_time(frame, cfg), strict=True):
        assert a["rid"].tolist() == b["rid"].tolist()


# ---------------------------------------------------------------------------------------- random
def test_random_split_is_seeded_disjoint_and_complete():
    frame = _canonical(2000)
    first = split_rows(frame, SplitConfig(mode="random", seed=7))
    again = split_rows(frame, SplitConfig(mode="random", seed=7))
    other = split_rows(frame, SplitConfig(mode="random", seed=8))
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert _rids(first[2]) != _rids(other[2])
    assert sorted(_rids(first[0]) + _rids(first[1]) + _rids(first[2])) == list(range(2000))
    assert abs(len(first[2]) - 300) <= 2 and abs(len(first[1]) - 300) <= 2
    for part in first:  # rows keep their (time) order within a split
        assert part[TIME_COLUMN].is_monotonic_increasing and part.index.tolist() == list(range(len(part)))


@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_random_split_is_stratified_by_label(rate):
    frame = _canonical(10_000, label_rate=rate, seed=3)
    overall = frame[LABEL_COLUMN].mean()
    for part in split_rows(frame, SplitConfig(mode="random", seed=1)):
        assert abs(part[LABEL_COLUMN].mean() - overall) <= 0.02
    unstratified = split_rows(frame, SplitConfig(mode="random", seed=1, stratify=False))
    assert sum(len(p) for p in unstratified) == 10_000


# ---------------------------------------------------------------------------------------- column
def test_column_mode_reproduces_the_given_split_row_for_row():
    raw = _log(600, seed=1)
    schema = _schema()
    frame = build_interactions({"log": raw}, schema)
    assert SPLIT_COLUMN in frame.columns  # flows from the raw log into the canonical table
    parts = split_interactions(frame, _features("column"), schema)
    for name, part in zip(SPLITS, parts, strict=True):
        assert _rids(part) == sorted(raw.loc[raw["fold"] == name, "rid"]), name
        assert SPLIT_COLUMN not in part.columns and "fold" not in part.columns  # never a model feature
        assert part[TIME_COLUMN].is_monotonic_increasing


def test_column_mode_matches_values_as_text_with_custom_labels():
    raw = _log(300, seed=2)
    raw["fold"] = np.where(raw["fold"] == "train", 0, np.where(raw["fold"] == "validation", 1, 2)).astype(float)
    schema = _schema()
    labels = SplitLabels(train="0", validation="1", test=" 2 ")
    parts = split_interactions(build_interactions({"log": raw}, schema), _features("column", labels=labels), schema)
    for code, part in zip((0.0, 1.0, 2.0), parts, strict=True):
        assert _rids(part) == sorted(raw.loc[raw["fold"] == code, "rid"])


def test_column_mode_unknown_values_fail_naming_column_values_and_setting():
    raw = _log(300, seed=3)
    raw["fold"] = raw["fold"].astype(object)
    raw.loc[[5, 6, 7], "fold"] = "holdout"
    raw.loc[9, "fold"] = None
    schema = _schema()
    frame = build_interactions({"log": raw}, schema)
    with pytest.raises(SplitColumnError) as info:
        split_interactions(frame, _features("column"), schema)
    message = str(info.value)
    for part in (
        "'fold'",
        "schema.split_column",
        "'holdout'",
        "<missing>",
        "'train'",
        "feature_engineering.split.labels",
        "4 row(s)",
    ):
        assert part in message, (part, message)


def test_column_without_validation_rows_carves_the_latest_train_rows():
    raw = _log(1000, seed=4, folds=["train"] * 800 + ["test"] * 200)
    schema = _schema()
    cfg = _features("column", labels=SplitLabels(validation=None), validation_fraction=0.2)
    tr, va, te = split_interactions(build_interactions({"log": raw}, schema), cfg, schema)
    assert _rids(te) == list(range(800, 1000))  # test as given
    assert sorted(_rids(tr) + _rids(va)) == list(range(800))
    assert len(va) == 160 and tr[TIME_COLUMN].max() < va[TIME_COLUMN].min()  # the latest 20% of train in time
    # the same when labels.validation is set but no row carries it
    same = split_interactions(
        build_interactions({"log": raw}, schema), _features("column", validation_fraction=0.2), schema
    )
    assert _rids(same[1]) == _rids(va)


def test_column_without_validation_rows_and_without_timestamp_carves_a_seeded_stratified_share():
    n = 4000
    raw = _log(n, seed=5, folds=["train"] * 3000 + ["test"] * 1000)
    raw["clicked"] = (np.random.default_rng(0).random(n) < 0.2).astype(int)
    schema = _schema(timestamp=None)
    frame = build_interactions({"log": raw}, schema)
    cfg = _features("column", labels=SplitLabels(validation=None), seed=3)
    tr, va, te = split_interactions(frame, cfg, schema)
    assert _rids(te) == list(range(3000, 4000))
    assert sorted(_rids(tr) + _rids(va)) == list(range(3000)) and abs(len(va) - 450) <= 1
    rate = raw["clicked"].iloc[:3000].mean()
    assert abs(va[LABEL_COLUMN].mean() - rate) <= 0.02 and abs(tr[LABEL_COLUMN].mean() - rate) <= 0.02
    assert _rids(split_interactions(frame, cfg, schema)[1]) == _rids(va)  # seeded
    other = _features("column", labels=SplitLabels(validation=None), seed=4)
    assert _rids(split_interactions(frame, other, schema)[1]) != _rids(va)
    assert _rids(va) != list(range(2550, 3000))  # not the last rows: a random share


def test_split_column_is_refused_as_a_feature():
    with pytest.raises(ValueError, match="split_column"):
        _schema(categorical=["fold"])
    with pytest.raises(ValueError, match="split_column"):
        SchemaConfig(
            source="table",
            label="clicked",
            user="user_id",
            item="item_id",
            split_column="fold",
            numerical=[{"name": "fold"}],
        )


def test_split_column_missing_from_the_log_is_named():
    with pytest.raises(KeyError, match="'fold'"):
        build_interactions({"log": _log(50).drop(columns=["fold"])}, _schema())


# ------------------------------------------------------------------------- separate files per split
def _write_split_files(folder: Path, raw: pd.DataFrame, names=SPLITS) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in names:
        path = folder / f"{name}.csv"
        raw[raw["fold"] == name].drop(columns=["fold"]).to_csv(path, index=False)
        files[name] = str(path)
    return files


def test_table_source_dataset_reads_one_file_per_split(tmp_path):
    raw = _log(400, seed=6)
    files = _write_split_files(tmp_path, raw)
    log = TableSourceDataset(split_files=files).load()["log"]
    assert len(log) == 400 and SPLIT_COLUMN in log.columns
    assert list(log[SPLIT_COLUMN].unique()) == ["train", "validation", "test"]  # concatenated in that order
    for name in SPLITS:
        assert sorted(log.loc[log[SPLIT_COLUMN] == name, "rid"]) == sorted(raw.loc[raw["fold"] == name, "rid"])
        assert files[name] in log.attrs["origin"]
    schema = _schema(split_column=SPLIT_COLUMN)
    parts = split_interactions(build_interactions({"log": log}, schema), _features("column"), schema)
    for name, part in zip(SPLITS, parts, strict=True):
        assert _rids(part) == sorted(raw.loc[raw["fold"] == name, "rid"])


def test_table_source_dataset_validation_file_is_optional(tmp_path):
    raw = _log(400, seed=7)
    raw = raw[raw["fold"] != "validation"]
    files = _write_split_files(tmp_path, raw, ("train", "test"))
    log = TableSourceDataset(split_files=files).load()["log"]
    assert set(log[SPLIT_COLUMN]) == {"train", "test"} and len(log) == len(raw)
    log = TableSourceDataset(split_files={**files, "validation": None}).load()["log"]  # `validation: null`
    assert set(log[SPLIT_COLUMN]) == {"train", "test"} and len(log) == len(raw)


def test_table_source_dataset_split_files_errors(tmp_path):
    files = _write_split_files(tmp_path, _log(200, seed=8))
    other = tmp_path / "other.csv"
    pd.read_csv(files["test"]).drop(columns=["item_id"]).assign(extra=1).to_csv(other, index=False)
    with pytest.raises(DatasetError, match="same columns") as info:
        TableSourceDataset(split_files={**files, "test": str(other)}).load()
    assert str(other) in str(info.value) and "item_id" in str(info.value) and "extra" in str(info.value)
    with pytest.raises(DatasetError, match="test file is required"):
        TableSourceDataset(split_files={"train": files["train"]}).load()
    with pytest.raises(DatasetError, match="unknown split name"):
        TableSourceDataset(split_files={**files, "dev": files["validation"]}).load()
    with pytest.raises(DatasetError, match="either filepath"):
        TableSourceDataset(filepath=files["train"], split_files=files)
    with pytest.raises(DatasetError, match="either filepath"):
        TableSourceDataset()
    clash = tmp_path / "clash.csv"
    pd.read_csv(files["test"]).assign(split="x").to_csv(clash, index=False)
    with pytest.raises(DatasetError, match="already has a column 'split'"):
        TableSourceDataset(split_files={"train": str(clash), "test": str(clash)}).load()


# ----------------------------------------------------------------------------- configuration mismatch
@pytest.mark.parametrize(
    ("schema_kwargs", "mode", "key", "words"),
    [
        ({"split_column": None}, "column", "schema.split_column", ["mode is 'column'", "split_column is not set"]),
        ({"split_column": "fold"}, "time", "feature_engineering.split.mode", ["'fold'", "mode: column"]),
        ({"split_column": "fold"}, "random", "feature_engineering.split.mode", ["'fold'", "'random'"]),
        (
            {"split_column": None, "timestamp": None},
            "time",
            "feature_engineering.split.mode",
            ["schema.timestamp", "row_order", "random"],
        ),
        ({"split_column": None}, "row_order", "feature_engineering.split.mode", ["row_order", "'ts'"]),
    ],
    ids=[
        "column-without-split-column",
        "split-column-with-time",
        "split-column-with-random",
        "time-without-timestamp",
        "row-order-with-timestamp",
    ],
)
def test_split_config_mismatch_fails_before_any_work(schema_kwargs, mode, key, words):
    schema = _schema(**schema_kwargs)
    features = _features(mode)
    problems = split_config_problems(schema, features)
    assert [k for k, _ in problems] == [key], problems
    for word in words:
        assert word in problems[0][1], (word, problems)
    with pytest.raises(SplitConfigError, match=f"key '{key}'"):
        split_interactions(pd.DataFrame(), features, schema)  # fails before touching the (empty) table


def test_split_config_accepts_every_consistent_setting():
    assert split_config_problems(_schema(split_column=None), _features("time")) == []
    assert split_config_problems(_schema(split_column=None, timestamp=None), _features("row_order")) == []
    assert split_config_problems(_schema(split_column=None), _features("random")) == []
    assert split_config_problems(_schema(split_column=None, timestamp=None), _features("random")) == []
    assert split_config_problems(_schema(), _features("column")) == []
    assert split_config_problems(_schema(timestamp=None), _features("column")) == []
    shipped = SchemaConfig(**OWN_SCHEMA)
    own_features = yaml.safe_load((REPO / "conf" / "own_table" / "parameters_feature_engineering.yml").read_text())
    assert split_config_problems(shipped, FeatureConfig(**own_features["feature_engineering"])) == []


def test_split_labels_must_differ():
    problems = split_config_problems(_schema(), _features("column", labels=SplitLabels(validation="train")))
    assert [k for k, _ in problems] == ["feature_engineering.split.labels"]


# ---------------------------------------------------------------------------------- the split gate
def test_split_gate_checks_order_only_for_ordered_modes():
    frame = _canonical(3000, seed=2)
    parts = split_rows(frame, SplitConfig(mode="random", seed=0))
    random_report = validate_split(*parts, _features("random"))
    assert random_report.success is True, random_report.error_message()
    column_report = validate_split(*parts, _features("column"))
    assert column_report.success is True, column_report.error_message()
    time_report = validate_split(*parts, _features("time"))  # the same rows, judged as a time split
    assert time_report.success is False and "time order" in time_report.error_message()
    row_report = validate_split(*parts, _features("row_order"))
    assert row_report.success is False and "time order" in row_report.error_message()
    ordered = validate_split(*split_rows(frame, SplitConfig(mode="row_order")), _features("row_order"))
    assert ordered.success is True, ordered.error_message()
    one_class = [p.assign(**{LABEL_COLUMN: np.int8(0)}) if i == 1 else p for i, p in enumerate(parts)]
    still = validate_split(*one_class, _features("random"))  # both classes in every split in every mode
    assert still.success is False and "both classes present" in still.error_message()
    empty = validate_split(parts[0], parts[1].iloc[:0], parts[2], _features("column"))
    assert empty.success is False and "split not empty" in empty.error_message()


# ------------------------------------------------------------------------ end to end: own_table files
@pytest.mark.slow
def test_own_table_split_files_end_to_end(tmp_path):
    from tests.support.own_table import own_table

    table = own_table(900, seed=9)
    fold = np.random.default_rng(9).choice(["train", "validation", "test"], len(table), p=[0.6, 0.2, 0.2])
    root = make_project(tmp_path / "project")
    files = {}
    for name in SPLITS:
        path = root / "data" / "01_raw" / "own" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table[fold == name].to_csv(path, index=False)
        files[name] = str(path)  # absolute: Kedro makes only `filepath`-like keys project-relative
    catalog_path = root / "conf" / "own_table" / "catalog.yml"
    catalog = yaml.safe_load(catalog_path.read_text())
    dataset = catalog["raw_source"]["dataset"]
    dataset.pop("filepath")
    dataset["split_files"] = files
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    run_pipelines(
        root,
        env="own_table",
        runtime_params={"schema": {"split_column": SPLIT_COLUMN}, "feature_engineering": {"split": {"mode": "column"}}},
    )
    inter = pd.read_parquet(root / "data" / "02_intermediate" / "interactions.parquet")
    assert len(inter) == 900 and SPLIT_COLUMN in inter.columns
    since_epoch = pd.to_datetime(table["event_time"]) - pd.Timestamp("1970-01-01")
    event_ms = (since_epoch // pd.Timedelta(milliseconds=1)).to_numpy()
    for name in SPLITS:
        part = pd.read_parquet(root / "data" / "03_primary" / f"{name}_interactions.parquet")
        assert SPLIT_COLUMN not in part.columns
        assert sorted(part[TIME_COLUMN]) == sorted(event_ms[fold == name]), name  # unique times: row for row
        model_input = pd.read_parquet(root / "data" / "05_model_input" / f"{name}.parquet")
        assert len(model_input) == (fold == name).sum()
        assert not [c for c in model_input.columns if SPLIT_COLUMN in c]
