"""Tests of the Great Expectations gate (raw tables and time-ordered split)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.validation import (
    RULE_BOTH_CLASSES,
    RULE_COUNT,
    RULE_DUP_IMPRESSIONS,
    RULE_EXISTS,
    RULE_FINITE_INF,
    RULE_FINITE_NAN,
    RULE_ID_NOT_NULL,
    RULE_LABEL_SET,
    RULE_NUMERIC_DTYPE,
    RULE_ROWS,
    RULE_SPLIT_NOT_EMPTY,
    RULE_TABLE_PRESENT,
    RULE_TIME_ORDER,
    RULE_TS_PARSEABLE,
    RULE_TS_RANGE,
    RULE_UNIQUE_KEY,
    DataValidationError,
    ValidationReport,
    build_table_suite,
    raise_if_failed,
    validate_source,
)
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


# ------------------------------------------------------------------ passing cases


def test_clean_frame_passes_and_reports_are_complete():
    report = validate_source(clean_tables(), ORIGINS, small_schema(), CFG)
    assert report.success, report.error_message()
    assert raise_if_failed(report) is report
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["tables"]["log"]["rows"] == 6 and d["tables"]["users"]["rows"] == 3
    rules = {(e["column"], e["rule"]) for e in d["tables"]["log"]["expectations"]}
    assert ("click", RULE_LABEL_SET) in rules and ("ts", RULE_TS_RANGE) in rules
    assert ("user_id, item_id, ts", RULE_DUP_IMPRESSIONS) in rules
    urules = {(e["column"], e["rule"]) for e in d["tables"]["users"]["expectations"]}
    assert {("fans", RULE_COUNT), ("fans", RULE_FINITE_INF), ("user_id", RULE_UNIQUE_KEY)} <= urules
    assert all(e["success"] for t in d["tables"].values() for e in t["expectations"])
    md = report.to_markdown()
    assert "PASSED" in md and LOG_FILE in md and RULE_LABEL_SET.replace("|", "\\|") in md


def test_build_table_suite_is_a_gx_suite():
    import great_expectations as gx

    suite = build_table_suite("users", ["user_id", "fans", "degree"], small_schema(), CFG)
    assert isinstance(suite, gx.ExpectationSuite)
    types = {e.expectation_type for e in suite.expectations}
    assert "expect_column_values_to_be_unique" in types
    assert "expect_table_row_count_to_be_between" in types


def test_real_kuairand_files_pass(kuairand_dir):
    log_path = kuairand_dir / "log_like_hate_kcore15.tsv"
    users_path = kuairand_dir / "user_features_pure.csv"
    tables = {"log": pd.read_csv(log_path, sep="\t"), "users": pd.read_csv(users_path)}
    schema = SchemaConfig(
        source="kuairand",
        label="is_click",
        user="user_id",
        item="video_id",
        timestamp="time_ms",
        timestamp_unit="ms",
        categorical=["user_active_degree"],
        numerical=[
            {"name": n, "count": True} for n in ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
        ],
        side_tables={"users": {"key": "user_id", "required": True}},
    )
    origins = {"log": str(log_path), "users": str(users_path)}
    # The real slice holds 124 duplicated impressions (0.6% of rows, 116 exact duplicate rows): the strict
    # default catches them, the KuaiRand configuration tolerates up to 1%.
    strict = validate_source(tables, origins, schema, ValidationConfig())
    assert [f.rule for f in strict.failures] == [RULE_DUP_IMPRESSIONS]
    assert strict.failures[0].unexpected_count == 247
    report = validate_source(tables, origins, schema, ValidationConfig(max_duplicate_impression_fraction=0.01))
    assert report.success, report.error_message()
    assert report.to_dict()["tables"]["log"]["rows"] == 41_828


# ------------------------------------------------------------------ one bad input per rule


@pytest.mark.parametrize("bad", [2, -1, "yes", "1", 0.5])
def test_bad_label_values_caught(bad):
    tables = clean_tables()
    log = tables["log"].astype({"click": object})
    log.loc[2, "click"] = bad
    tables["log"] = log
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "click", RULE_LABEL_SET, 1)
    assert only_failure(report, RULE_LABEL_SET).examples == [bad]


def test_label_2_and_minus_1_in_int_column():
    tables = clean_tables()
    tables["log"].loc[[0, 1, 3], "click"] = [2, -1, 2]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "click", RULE_LABEL_SET, 3)
    assert only_failure(report, RULE_LABEL_SET).examples == [2, -1]  # distinct offending values


def test_missing_required_column_reported_not_crashing():
    tables = clean_tables()
    tables["log"] = tables["log"].drop(columns=["item_id"])
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "item_id", RULE_EXISTS, None)
    # nothing else errors because of it
    assert all(o.error is None for o in report.outcomes)


def test_feature_missing_from_every_table_reported_against_log():
    tables = clean_tables()
    tables["users"] = tables["users"].drop(columns=["degree"])
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    f = only_failure(report, RULE_EXISTS, "degree")
    assert f.dataset == LOG_FILE and f.table == "log"
    assert "log, users" in f.detail
    assert "'degree'" in report.error_message()


def test_missing_side_table_key_reported():
    tables = clean_tables()
    tables["users"] = tables["users"].rename(columns={"user_id": "uid"})
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, USERS_FILE, "user_id", RULE_EXISTS, None)


def test_required_side_table_absent():
    tables = clean_tables()
    tables["log"] = tables["log"].assign(fans=1, degree="a")
    del tables["users"]
    schema = small_schema(side_tables={"users": {"key": "user_id", "required": True}})
    report = validate_source(tables, ORIGINS, schema, CFG)
    f = only_failure(report, RULE_TABLE_PRESENT)
    assert f.dataset == USERS_FILE
    # optional side table absent: fine
    assert validate_source(tables, ORIGINS, small_schema(), CFG).success


def test_expectation_error_is_a_failure_not_a_crash():
    """A suite built for other columns (so GX errors on a missing column) is reported as 'column exists'."""
    from ccss_pipeline.data.validation import gx_run as ex

    suite = build_table_suite("users", ["user_id", "fans", "degree"], small_schema(), CFG)
    frame = pd.DataFrame({"user_id": [1, 2]})
    results = ex.run_suites([("users", frame, suite)], 5)
    report = ValidationReport(success=True)
    ex.collect_results(USERS_FILE, "users", frame, results["users"], 5, report)
    cols = {f.column for f in report.failures if f.rule == RULE_EXISTS}
    assert "fans" in cols
    assert any(o.error for o in report.outcomes)


@pytest.mark.parametrize(
    ("value", "rule"), [(np.inf, RULE_FINITE_INF), (-np.inf, RULE_FINITE_INF), (np.nan, RULE_FINITE_NAN)]
)
def test_non_finite_numeric_caught(value, rule):
    tables = clean_tables()
    tables["log"].loc[[1, 4], "price"] = value
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "price", rule, 2)
    assert "values finite" in rule
    assert len(report.failures) == 1


def test_inf_and_nan_in_side_table_count_column():
    tables = clean_tables()
    tables["users"]["fans"] = [np.inf, np.nan, -2.0]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, USERS_FILE, "fans", RULE_FINITE_INF, 1)
    assert_message(report, USERS_FILE, "fans", RULE_FINITE_NAN, 1)
    assert_message(report, USERS_FILE, "fans", RULE_COUNT, 1)
    assert only_failure(report, RULE_COUNT).examples == [-2.0]


def test_negative_count_caught():
    tables = clean_tables()
    tables["users"]["fans"] = [0, -5, -7]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, USERS_FILE, "fans", RULE_COUNT, 2)
    assert only_failure(report, RULE_COUNT).examples == [-5, -7]


def test_non_numeric_dtype_caught():
    tables = clean_tables()
    tables["log"]["price"] = ["1.5", "2", "x", "0", "3", "2"]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    f = only_failure(report, RULE_NUMERIC_DTYPE, "price")
    assert f.dataset == LOG_FILE and "observed dtype" in f.detail
    assert "price" in report.error_message() and RULE_NUMERIC_DTYPE in report.error_message()
    assert len(report.failures) == 1 and all(o.error is None for o in report.outcomes)  # no GX errors
    # object column mixing numbers and a string: the string is the offending value
    tables["log"]["price"] = pd.Series([1.5, 2, "x", 0, 3, 2], dtype=object)
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "price", RULE_NUMERIC_DTYPE, 1)
    assert only_failure(report, RULE_NUMERIC_DTYPE).examples == ["x"]
    # object column of plain numbers is fine
    tables["log"]["price"] = pd.Series([1.5, 2, 7, 0, 3, 2], dtype=object)
    assert validate_source(tables, ORIGINS, small_schema(), CFG).success


def test_null_ids_caught():
    tables = clean_tables()
    tables["log"]["user_id"] = tables["log"]["user_id"].astype("float64")
    tables["log"].loc[[0, 5], "user_id"] = np.nan
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "user_id", RULE_ID_NOT_NULL, 2)


def test_side_table_key_not_unique():
    tables = clean_tables()
    tables["users"]["user_id"] = [1, 2, 2]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, USERS_FILE, "user_id", RULE_UNIQUE_KEY, 2)
    assert only_failure(report, RULE_UNIQUE_KEY).examples == [2]


def test_duplicated_impressions_caught():
    tables = clean_tables()
    tables["log"] = pd.concat([tables["log"], tables["log"].iloc[[3]]], ignore_index=True)
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "user_id, item_id, ts", RULE_DUP_IMPRESSIONS, 2)
    ex = only_failure(report, RULE_DUP_IMPRESSIONS).examples
    assert ex and ex[0]["user_id"] == 2 and ex[0]["item_id"] == 12
    # without a timestamp there is no impression key: no uniqueness expectation
    no_ts = small_schema(timestamp=None)
    assert validate_source(tables, ORIGINS, no_ts, CFG).success


def test_timestamps_out_of_range_ms_and_s():
    tables = clean_tables()
    tables["log"].loc[1, "ts"] = 5  # 1970
    tables["log"].loc[2, "ts"] = 5_000_000_000_000  # year 2128
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "ts", RULE_TS_RANGE, 2)
    examples = only_failure(report, RULE_TS_RANGE).examples
    assert [e.raw for e in examples] == [5, 5_000_000_000_000]  # raw values, shown with their dates
    assert [str(e) for e in examples] == ["5 (= 1970-01-01T00:00:00Z)", "5000000000000 (= 2128-06-11T08:53:20Z)"]
    # the same clean log in seconds passes with unit "s", fails with a narrow window
    sec = clean_tables()
    sec["log"]["ts"] = sec["log"]["ts"] // 1000
    assert validate_source(sec, ORIGINS, small_schema(timestamp_unit="s"), CFG).success
    narrow = ValidationConfig(timestamp_min="2023-01-01")
    assert_message(
        validate_source(sec, ORIGINS, small_schema(timestamp_unit="s"), narrow), LOG_FILE, "ts", RULE_TS_RANGE, 6
    )


def test_datetime_string_timestamps():
    tables = clean_tables()
    tables["log"]["ts"] = [
        "2022-04-10 08:59:09",
        "2022-04-10 09:00:00",
        "not a date",
        "1999-12-31 23:59:59",
        "2022-04-11 00:00:00",
        None,
    ]
    report = validate_source(tables, ORIGINS, small_schema(timestamp_unit="datetime"), CFG)
    assert_message(report, LOG_FILE, "ts", RULE_TS_PARSEABLE, 2)
    assert "not a date" in only_failure(report, RULE_TS_PARSEABLE).examples
    assert_message(report, LOG_FILE, "ts", RULE_TS_RANGE, 1)
    assert only_failure(report, RULE_TS_RANGE).examples == ["1999-12-31 23:59:59"]
    # real datetime64 values pass
    tables["log"]["ts"] = pd.date_range("2022-04-10", periods=6, freq="h")
    assert validate_source(tables, ORIGINS, small_schema(timestamp_unit="datetime"), CFG).success


def test_string_timestamps_with_ms_unit_not_parseable():
    tables = clean_tables()
    tables["log"]["ts"] = tables["log"]["ts"].astype(object)
    tables["log"].loc[0, "ts"] = "yesterday"
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    assert_message(report, LOG_FILE, "ts", RULE_TS_PARSEABLE, 1)


def test_empty_table_and_max_offending_values():
    tables = clean_tables()
    tables["users"] = tables["users"].iloc[:0]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    f = only_failure(report, RULE_ROWS)
    assert f.dataset == USERS_FILE and "0 rows" in f.line()

    many = clean_tables()
    many["log"]["click"] = [2, 3, 4, 5, 6, 7]
    report = validate_source(many, ORIGINS, small_schema(), ValidationConfig(max_offending_values=2))
    f = only_failure(report, RULE_LABEL_SET)
    assert f.unexpected_count == 6 and f.examples == [2, 3]


def test_one_message_lists_every_failure():
    tables = clean_tables()
    tables["log"].loc[0, "click"] = 2
    tables["log"].loc[1, "price"] = np.inf
    tables["users"]["fans"] = [-1, 0, 1]
    report = validate_source(tables, ORIGINS, small_schema(), CFG)
    msg = report.error_message()
    assert msg.count("\n") == len(report.failures) == 3
    assert "3 expectation(s) failed" in msg and LOG_FILE in msg and USERS_FILE in msg
    md = report.to_markdown()
    assert "FAILED" in md and "FAIL" in md
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["n_failures"] == 3 and not d["success"]


# ------------------------------------------------------------------ split checks


def test_clean_splits_pass_ties_allowed():
    train, val, test = split_frames()
    assert validate_splits(train, val, test, "click", "ts", SPLIT_ORIGINS).success
    val.loc[0, "ts"] = 4  # tie with the end of train: allowed by default, refused when strict
    assert validate_splits(train, val, test, "click", "ts", SPLIT_ORIGINS).success
    strict = validate_splits(train, val, test, "click", "ts", SPLIT_ORIGINS, allow_ties=False)
    assert not strict.success and strict.failures[0].examples == [4]


def test_empty_split_caught():
    train, val, test = split_frames()
    report = validate_splits(train, val.iloc[:0], test, "click", "ts", SPLIT_ORIGINS)
    f = only_failure(report, RULE_SPLIT_NOT_EMPTY)
    assert f.dataset == "validation.parquet" and "0 rows" in f.line()
    with pytest.raises(DataValidationError, match="validation.parquet"):
        raise_if_failed(report)


def test_overlapping_time_caught():
    train, val, test = split_frames()
    test.loc[0, "ts"] = 3  # earlier than the end of train and validation
    report = validate_splits(train, val, test, "click", "ts", SPLIT_ORIGINS)
    f = only_failure(report, f"{RULE_TIME_ORDER}: max(validation) <= min(test)")
    assert f.dataset == "test.parquet" and f.column == "ts" and f.unexpected_count == 1 and f.examples == [3]
    assert "max(validation)=6" in f.detail
    assert "test.parquet" in report.error_message()


def test_datetime_overlap_caught():
    train, val, test = split_frames()
    for fr in (train, val, test):
        fr["ts"] = pd.Timestamp("2022-04-10") + pd.to_timedelta(fr["ts"], unit="h")
    val.loc[1, "ts"] = pd.Timestamp("2022-04-10 01:00")
    report = validate_splits(train, val, test, "click", "ts", SPLIT_ORIGINS)
    f = only_failure(report, f"{RULE_TIME_ORDER}: max(train) <= min(validation)")
    assert f.unexpected_count == 1
    json.dumps(report.to_dict(), allow_nan=False)


def test_one_class_in_train_and_bad_labels_caught():
    train, val, test = split_frames()
    train["click"] = 1
    test.loc[0, "click"] = 2
    report = validate_splits(train, val, test, "click", "ts", SPLIT_ORIGINS)
    # test's labels become {2, 1}: it has no 0 either, and every split must hold both classes
    both = {f.dataset: f for f in report.failures if f.rule == RULE_BOTH_CLASSES}
    assert set(both) == {"train.parquet", "test.parquet"}, report.error_message()
    f = both["train.parquet"]
    assert f.column == "click" and "observed values {1}" in f.detail
    g = only_failure(report, RULE_LABEL_SET)
    assert g.dataset == "test.parquet" and g.unexpected_count == 1
