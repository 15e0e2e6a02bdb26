"""Second adversarial review of the data-validation gate (issue 11): each case failed silently before.

1. day-first dates beside ISO dates were parsed with ``format="mixed"`` (rows moved by months); the gate
   and the join now share one parser (:mod:`ccss_pipeline.data.timestamps`): ISO 8601, or exactly
   ``schema.timestamp_format``;
2. one class only in validation or test passed the split gate (only train was checked);
3. one impression written twice in two timestamp notations passed "no duplicated impressions";
4. a CSV header repeating a name was read as ``name`` and ``name.1``;
5. side tables: a key found for only part of the log (NaN after the left join), an int key against a
   string key (crash after the gate), a key absent from the log (KeyError at join time);
6. schema vs data: a declared numerical or categorical column that holds no value at all.

Unit level (``validate_source`` / ``validate_splits`` / ``read_table`` / ``build_interactions``): fast.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.sources import SourceError, read_table
from ccss_pipeline.data.validation import (
    RULE_BOTH_CLASSES,
    RULE_DUP_IMPRESSIONS,
    RULE_EXISTS,
    RULE_KEY_COVERAGE,
    RULE_KEY_TYPES,
    RULE_NOT_ALL_NULL,
    RULE_TS_PARSEABLE,
    validate_source,
)
from ccss_pipeline.spec import TIME_COLUMN
from tests.kedro_project import REPO
from tests.support.own_table import own_table
from tests.support.raw_tables import (
    LOG_FILE,
    ORIGINS,
    SPLIT_ORIGINS,
    USERS_FILE,
    assert_message,
    clean_tables,
    only_failure,
    small_schema,
    split_frames,
    validate_splits,
)

CFG = ValidationConfig()
DAY = 86_400_000


def _ms(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value // 10**6


def _datetime_log(values: list) -> dict[str, pd.DataFrame]:
    tables = clean_tables()
    tables["log"]["ts"] = pd.Series(values, dtype=object)
    return tables


# ------------------------------------------------------------------ 1. day-first dates and ISO dates


MIXED = ["2022-04-05 10:00:00", "03/04/2022", "2022-04-06", "2022-04-07T08:00:00Z", "04/05/2022", "2022-04-08"]


def test_day_first_dates_beside_iso_dates_fail_the_gate_asking_for_timestamp_format():
    report = validate_source(_datetime_log(MIXED), ORIGINS, small_schema(timestamp_unit="datetime"), CFG)
    assert_message(report, LOG_FILE, "ts", RULE_TS_PARSEABLE, 2)
    f = only_failure(report, RULE_TS_PARSEABLE)
    assert f.examples == ["03/04/2022", "04/05/2022"]  # the raw values
    line = f.line()
    assert "not ISO 8601" in line and "schema.timestamp_format" in line and "'%d/%m/%Y'" in line, line


def test_build_interactions_refuses_what_is_not_iso_8601_naming_the_column():
    with pytest.raises(ValueError, match=r"timestamp column 'ts'.*2 value\(s\).*'03/04/2022'"):
        build_interactions(_datetime_log(MIXED), small_schema(timestamp_unit="datetime"))


def test_timestamp_format_parses_day_first_dates_in_the_gate_and_the_join_alike():
    values = [
        "03/04/2022 10:00",
        "15/04/2022 09:30",
        "01/05/2022 00:00",
        "02/05/2022 00:00",
        "12/04/2022 23:59",
        "13/04/2022 00:01",
    ]
    schema = small_schema(timestamp_unit="datetime", timestamp_format="%d/%m/%Y %H:%M")
    tables = _datetime_log(values)
    assert validate_source(tables, ORIGINS, schema, CFG).success
    times = sorted(build_interactions(tables, schema)[TIME_COLUMN].tolist())
    assert times[0] == _ms("2022-04-03 10:00")  # 3 April, not 4 March
    assert times == sorted(_ms(pd.to_datetime(v, format="%d/%m/%Y %H:%M").isoformat()) for v in values)
    # with the format set, every value must match it exactly: an ISO value is now the odd one out
    tables["log"].loc[2, "ts"] = "2022-05-01 00:00"
    report = validate_source(tables, ORIGINS, schema, CFG)
    f = only_failure(report, RULE_TS_PARSEABLE)
    assert f.examples == ["2022-05-01 00:00"] and "schema.timestamp_format '%d/%m/%Y %H:%M'" in f.line()


def test_timezones_convert_to_utc_in_the_gate_and_the_join():
    values = [
        "2022-04-05T12:00:00+02:00",
        "2022-04-05T10:00:01Z",
        "2022-04-05 10:00:02",
        "2022-04-05T10:00:03",
        "2022-04-05T05:00:04-05:00",
        "2022-04-05",
    ]
    tables = _datetime_log(values)
    schema = small_schema(timestamp_unit="datetime")
    assert validate_source(tables, ORIGINS, schema, CFG).success
    got = build_interactions(tables, schema)[TIME_COLUMN].tolist()
    t = _ms("2022-04-05 10:00:00")
    assert got == [_ms("2022-04-05"), t, t + 1000, t + 2000, t + 3000, t + 4000]


def test_own_table_schema_and_its_iso_strings_still_pass_and_join():
    own = REPO / "conf" / "own_table" / "parameters_schema.yml"
    schema = SchemaConfig(**yaml.safe_load(own.read_text())["schema"])
    assert schema.timestamp_format is None
    table = own_table(200, seed=2)
    bundle = {"log": table}
    assert validate_source(bundle, {"log": "interactions.csv"}, schema, CFG).success
    first = build_interactions(bundle, schema)[TIME_COLUMN].min()
    assert first == _ms(table["event_time"].min())


# ------------------------------------------------------------------ 2. one class in validation or test


@pytest.mark.parametrize("split", ["validation", "test"])
def test_one_class_in_validation_or_test_fails_the_split_gate(split):
    frames = dict(zip(("train", "validation", "test"), split_frames(), strict=True))
    frames[split]["click"] = 0
    report = validate_splits(frames["train"], frames["validation"], frames["test"], "click", "ts", SPLIT_ORIGINS)
    f = only_failure(report, RULE_BOTH_CLASSES)
    assert f.dataset == f"{split}.parquet" and f.column == "click" and "observed values {0}" in f.detail
    assert f"{split}.parquet" in report.error_message() and len(report.failures) == 1


# ------------------------------------------------------------------ 3. one impression in two notations


def test_duplicate_impression_in_two_iso_notations_is_caught_with_raw_examples():
    values = [
        "2022-04-05T10:00:00Z",
        "2022-04-05T10:00:01Z",
        "2022-04-05T10:00:02Z",
        "2022-04-05T10:00:03Z",
        "2022-04-05T10:00:04Z",
        "2022-04-05 10:00:00+00:00",
    ]
    tables = _datetime_log(values)
    tables["log"].loc[5, ["user_id", "item_id"]] = [1, 10]  # same user, item and instant as row 0
    report = validate_source(tables, ORIGINS, small_schema(timestamp_unit="datetime"), CFG)
    assert_message(report, LOG_FILE, "user_id, item_id, ts", RULE_DUP_IMPRESSIONS, 2)
    examples = only_failure(report, RULE_DUP_IMPRESSIONS).examples
    assert {e["ts"] for e in examples} == {"2022-04-05T10:00:00Z", "2022-04-05 10:00:00+00:00"}
    assert all(e["user_id"] == 1 and e["item_id"] == 10 for e in examples)
    assert len(report.failures) == 1


def test_duplicate_impression_in_ms_as_int_and_as_float_string_is_caught():
    tables = clean_tables()
    log = tables["log"].astype({"ts": object})
    log.loc[5, ["user_id", "item_id"]] = [1, 10]
    log.loc[5, "ts"] = f"{log.loc[0, 'ts']}.0"  # the same millisecond, written as a float string
    tables["log"] = log
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    f = only_failure(report, RULE_DUP_IMPRESSIONS)
    assert f.unexpected_count == 2 and f.column == "user_id, item_id, ts"
    # a string in an ms column is reported by its own rule too
    assert "numeric dtype" in report.error_message()


# ------------------------------------------------------------------ 4. a header repeating a name


@pytest.mark.parametrize(("name", "sep"), [("log.csv", ","), ("log.tsv", "\t")])
def test_read_table_refuses_a_header_repeating_a_column_name(tmp_path, name, sep):
    path = tmp_path / name
    rows = [["user_id", "item_id", "price", "click", "price"], ["1", "2", "3.5", "1", "9.9"], ["2", "3", "1", "0", "8"]]
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    with pytest.raises(SourceError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message and "'price'" in message and "repeats" in message, message
    assert "'user_id'" not in message


# ------------------------------------------------------------------ 5. side-table keys


def test_side_table_matching_part_of_the_log_fails_key_coverage_and_is_reported():
    tables = clean_tables()
    tables["users"] = tables["users"][tables["users"]["user_id"] != 3]  # log rows of user 3 find nothing
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "user_id", RULE_KEY_COVERAGE, 2)
    f = only_failure(report, RULE_KEY_COVERAGE)
    line = f.line()
    assert f.examples == [3] and USERS_FILE in line and "66.67%" in line, line
    assert "data_validation.min_key_coverage" in line and "fans" in line and "degree" in line, line
    assert len(report.failures) == 1
    # the observed coverage is in the JSON and the Markdown reports
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    cov = [e for e in d["tables"]["log"]["expectations"] if e["rule"] == RULE_KEY_COVERAGE]
    assert len(cov) == 1 and cov[0]["observed_value"]["coverage"] == pytest.approx(4 / 6, abs=1e-6)
    assert cov[0]["observed_value"]["side_table"] == "users"
    assert "coverage=0.666667" in report.to_markdown()
    # a relaxed setting accepts it, the coverage still reported
    relaxed = validate_source(tables, ORIGINS, small_schema(), ValidationConfig(min_key_coverage=0.6))
    assert relaxed.success, relaxed.error_message()
    assert any(
        o.rule == RULE_KEY_COVERAGE and o.observed_value["coverage"] == pytest.approx(4 / 6, abs=1e-6)
        for o in relaxed.outcomes
    )


def test_side_table_the_join_takes_nothing_from_is_measured_not_gated():
    tables = clean_tables()
    tables["log"] = tables["log"].assign(fans=1, degree="a")  # the log wins: nothing comes from users
    tables["users"] = tables["users"].iloc[:1]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert report.success, report.error_message()
    cov = [o for o in report.outcomes if o.rule == RULE_KEY_COVERAGE]
    assert len(cov) == 1 and cov[0].observed_value["coverage"] == pytest.approx(2 / 6, abs=1e-6)
    assert cov[0].observed_value["min_key_coverage"] == "not gated"


def test_int_key_in_log_and_string_key_in_side_table_is_a_gate_failure_not_a_crash():
    tables = clean_tables()
    tables["users"]["user_id"] = tables["users"]["user_id"].astype(str)
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    f = only_failure(report, RULE_KEY_TYPES, "user_id")
    line = f.line()
    assert LOG_FILE in line and USERS_FILE in line and "int64" in line, line
    assert f"dtype {tables['users']['user_id'].dtype}" in line and "strings" in line and "numbers" in line, line
    assert len(report.failures) == 1  # no coverage failure on top: 0% found says nothing more
    with pytest.raises(ValueError):  # what the gate now stops before it happens
        build_interactions(tables, small_schema())


def test_side_table_key_absent_from_the_log_is_a_gate_failure_not_a_key_error():
    tables = clean_tables()
    tables["users"] = tables["users"].rename(columns={"user_id": "uid"})
    schema = small_schema(side_tables={"users": {"key": "uid"}})
    report = validate_source(tables, ORIGINS, schema, CFG)
    assert_message(report, LOG_FILE, "uid", RULE_EXISTS, None)
    assert "join key of side table(s) 'users'" in only_failure(report, RULE_EXISTS, "uid").detail
    assert len(report.failures) == 1
    with pytest.raises(KeyError):  # what the gate now stops before it happens
        build_interactions(tables, schema)


def test_real_kuairand_env_key_coverage(kuairand_dir):
    from ccss_pipeline.data.sources import origin_of, read_kuairand

    bundle = read_kuairand(kuairand_dir)
    conf = REPO / "conf" / "kuairand"
    schema = SchemaConfig(**yaml.safe_load((conf / "parameters_schema.yml").read_text())["schema"])
    cfg = ValidationConfig(**yaml.safe_load((conf / "parameters_data_validation.yml").read_text())["data_validation"])
    report = validate_source(bundle, {n: origin_of(f, n) for n, f in bundle.items()}, schema, cfg)
    assert report.success, report.error_message()
    cov = {o.observed_value["side_table"]: o.observed_value for o in report.outcomes if o.rule == RULE_KEY_COVERAGE}
    assert cov["users"]["coverage"] == 1.0 and cov["users"]["min_key_coverage"] == cfg.min_key_coverage
    assert cov["videos"]["coverage"] == pytest.approx(0.0267, abs=5e-4)  # measured; the README says 2.7%
    assert cov["videos"]["min_key_coverage"] == "not gated"  # the schema takes no column from the video table


# ------------------------------------------------------------------ 6. schema vs data


@pytest.mark.parametrize("empty", [np.nan, None], ids=["nan", "none"])
def test_numerical_column_entirely_null_is_a_gate_failure(empty):
    tables = clean_tables()
    tables["log"]["price"] = pd.Series([empty] * 6, dtype=object if empty is None else "float64")
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "price", RULE_NOT_ALL_NULL, None)
    assert "every value is missing" in only_failure(report, RULE_NOT_ALL_NULL, "price").line()


def test_numerical_column_entirely_null_in_a_side_table_is_a_gate_failure():
    tables = clean_tables()
    tables["users"]["fans"] = np.nan
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, USERS_FILE, "fans", RULE_NOT_ALL_NULL, None)


@pytest.mark.parametrize("table", ["log", "users"])
def test_categorical_column_entirely_null_is_a_gate_failure(table):
    tables = clean_tables()
    if table == "log":
        tables["log"]["degree"] = None  # the log wins over the users table: the join takes the log's
    else:
        tables["users"]["degree"] = None
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    dataset = LOG_FILE if table == "log" else USERS_FILE
    assert_message(report, dataset, "degree", RULE_NOT_ALL_NULL, None)
    assert len(report.failures) == 1


def test_log_features_are_derived_not_looked_for_and_an_empty_table_is_reported_once():
    schema = small_schema(log_features=[{"name": "user_prior_ctr", "entity": "user", "stat": "smoothed_ctr"}])
    assert validate_source(clean_tables(), ORIGINS, schema, CFG).success
    tables = clean_tables()
    tables["users"] = tables["users"].iloc[:0]
    report = validate_source(tables, ORIGINS, schema, CFG)
    assert {f.rule for f in report.failures if f.table == "users"} == {"row count >= 1"}, report.error_message()
