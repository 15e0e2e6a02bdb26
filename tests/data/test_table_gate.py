"""The raw gate on engine tables gives the frame gate's verdict: the same failures (file, table, column,
rule, count), on clean data and on each kind of bad input, with memory bounded by a batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data import validation as ex
from ccss_pipeline.data.synthetic import SyntheticConfig, generate
from ccss_pipeline.data.validation.table_gate import validate_source_tables

ibis = pytest.importorskip("ibis")

ORIGINS = {
    "log": "data/01_raw/log.parquet",
    "users": "data/01_raw/users.parquet",
    "videos": "data/01_raw/videos.parquet",
}


def _schema(**overrides) -> SchemaConfig:
    from pathlib import Path

    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "conf/base/parameters_schema.yml").read_text())
    return SchemaConfig(**{**raw["schema"], **overrides})


@pytest.fixture(scope="module")
def clean() -> dict[str, pd.DataFrame]:
    tables = generate(SyntheticConfig(n_users=150, n_videos=200, n_days=4, seed=3))
    return {k: v for k, v in tables.items() if k in ("log", "users", "videos")}


def _copy(tables):
    return {k: v.copy() for k, v in tables.items()}


def _corrupt_label(t):
    t["log"].loc[[3, 50], "is_click"] = 2


def _null_ids(t):
    t["log"]["user_id"] = t["log"]["user_id"].astype("float64")
    t["log"].loc[[1, 7, 9], "user_id"] = np.nan


def _inf_numeric(t):
    t["videos"].loc[[0, 4], "hist_ctr"] = np.inf


def _negative_count(t):
    t["users"].loc[[2, 5, 6], "user_active_days"] = -1


def _bad_timestamps(t):
    t["log"].loc[[0, 10], "time_ms"] = 10  # 1970: out of range


def _duplicate_impressions(t):
    t["log"] = pd.concat([t["log"], t["log"].iloc[[5, 6, 6]]], ignore_index=True)


def _repeated_side_key(t):
    t["users"] = pd.concat([t["users"], t["users"].iloc[[0, 1]]], ignore_index=True)


def _uncovered_keys(t):
    t["videos"] = t["videos"].iloc[5:].reset_index(drop=True)


def _string_side_key(t):
    t["users"]["user_id"] = t["users"]["user_id"].astype(str)


def _all_null_feature(t):
    t["users"]["register_days"] = np.nan


def _missing_column(t):
    t["log"] = t["log"].drop(columns=["is_click"])


def _empty_side_table(t):
    t["users"] = t["users"].iloc[:0]


def _missing_table(t):
    del t["videos"]


CASES = [
    None,
    _corrupt_label,
    _null_ids,
    _inf_numeric,
    _negative_count,
    _bad_timestamps,
    _duplicate_impressions,
    _repeated_side_key,
    _uncovered_keys,
    _string_side_key,
    _all_null_feature,
    _missing_column,
    _empty_side_table,
    _missing_table,
]


def _verdict(report: ex.ValidationReport) -> set[tuple]:
    return {(f.dataset, f.table, f.column, f.rule, f.unexpected_count) for f in report.failures}


@pytest.mark.parametrize("corrupt", CASES, ids=lambda c: "clean" if c is None else c.__name__.strip("_"))
def test_table_gate_matches_frame_gate(clean, corrupt):
    tables = _copy(clean)
    if corrupt is not None:
        corrupt(tables)
    schema, cfg = _schema(), ValidationConfig()
    expected = ex.validate_source(tables, ORIGINS, schema, cfg)
    got = validate_source_tables(
        {k: ibis.memtable(v) for k, v in tables.items()}, ORIGINS, schema, cfg, batch_rows=1500
    )  # several batches per log: three of its 4,312 rows (each batch is a Great Expectations run of its own)
    assert got.success == expected.success == (corrupt is None)
    assert _verdict(got) == _verdict(expected), (got.error_message(), expected.error_message())
    assert {n: s.rows for n, s in got.tables.items()} == {n: s.rows for n, s in expected.tables.items()}


def test_examples_are_offending_values_and_message_names_file_column_rule(clean):
    tables = _copy(clean)
    _repeated_side_key(tables)
    _uncovered_keys(tables)
    got = validate_source_tables(
        {k: ibis.memtable(v) for k, v in tables.items()}, ORIGINS, _schema(), ValidationConfig(), batch_rows=1500
    )
    message = got.error_message()
    assert (
        "data/01_raw/users.parquet [table 'users'], column 'user_id': unique key failed for 4 row(s); e.g. 0, 1"
        in message
    )
    coverage = next(f for f in got.failures if f.rule == ex.RULE_KEY_COVERAGE)
    assert set(coverage.examples) <= set(range(5)) and coverage.examples == sorted(coverage.examples)


def test_duplicate_fraction_allowance_is_applied_to_the_whole_log(clean):
    tables = _copy(clean)
    _duplicate_impressions(tables)
    memtables = {k: ibis.memtable(v) for k, v in tables.items()}
    # three batches of the log: the duplicates (its last rows) and their originals (its first) in different ones
    strict = validate_source_tables(memtables, ORIGINS, _schema(), ValidationConfig(), batch_rows=1500)
    loose = validate_source_tables(
        memtables, ORIGINS, _schema(), ValidationConfig(max_duplicate_impression_fraction=0.01), batch_rows=1500
    )
    assert [f.rule for f in strict.failures] == [ex.RULE_DUP_IMPRESSIONS]
    assert strict.failures[0].unexpected_count == 5 and len(strict.failures[0].examples) == 2
    assert loose.success
