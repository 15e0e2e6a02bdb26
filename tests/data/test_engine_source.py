"""Sources read by the data engine: the gate and the join give what the in-memory path gives on the same
files; bad files fail naming them; a large log is written chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DatasetError

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.relational.interactions import build_interactions as build_on_engine
from ccss_pipeline.data.sources import EngineSource, SourceError, read_engine_source
from ccss_pipeline.data.synthetic import SyntheticConfig, write_parquet
from ccss_pipeline.data.validation.table_gate import validate_source_tables
from ccss_pipeline.datasets import EngineSourceDataset

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = SchemaConfig(**yaml.safe_load((ROOT / "conf/base/parameters_schema.yml").read_text())["schema"])
CFG = SyntheticConfig(n_users=120, n_videos=150, n_days=3, seed=5)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    return write_parquet(CFG, tmp_path_factory.mktemp("synthetic"), chunk_rows=400)


def _tables(paths: dict[str, Path]) -> dict[str, str]:
    return {name: str(path) for name, path in paths.items()}


def test_chunked_generator_writes_several_parts_of_a_valid_log(written):
    parts = sorted((written["log"]).glob("part-*.parquet"))
    assert len(parts) >= 6  # 3 days x at least 2 user blocks
    log = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert not log.duplicated(["user_id", "video_id", "time_ms"]).any()
    assert set(log["is_click"].unique()) == {0, 1}
    assert log["user_id"].between(0, CFG.n_users - 1).all()


def test_engine_source_gate_and_join_equal_the_in_memory_path(written):
    source = EngineSourceDataset(tables=_tables(written)).load()
    assert isinstance(source, EngineSource) and source.origins["users"] == str(written["users"])
    report = validate_source_tables(source, source.origins, SCHEMA, ValidationConfig(), batch_rows=1000)  # 3 batches
    assert report.success, report.error_message()
    assert report.tables["log"].rows == sum(len(pd.read_parquet(p)) for p in written["log"].glob("*.parquet"))

    frames = {
        "log": pd.read_parquet(written["log"]),
        "users": pd.read_parquet(written["users"]),
        "videos": pd.read_parquet(written["videos"]),
    }
    expected = build_interactions(frames, SCHEMA)
    got = build_on_engine(source, SCHEMA).to_pandas()
    assert got["row"].tolist() == list(range(len(got)))
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)


def test_bad_rows_in_an_engine_source_fail_the_gate_naming_the_file(written, tmp_path):
    users = pd.read_parquet(written["users"])
    users.loc[[1, 2], "user_active_days"] = -5
    bad_users = tmp_path / "users.parquet"
    users.to_parquet(bad_users, index=False)
    source = read_engine_source({**_tables(written), "users": str(bad_users)}, _duckdb())
    # the log's 2,635 rows in three batches (each batch is one Great Expectations run, ~1 s: 50 rows made 59)
    report = validate_source_tables(source, source.origins, SCHEMA, ValidationConfig(), batch_rows=1000)
    assert not report.success
    assert (
        f"{bad_users} [table 'users'], column 'user_active_days': count >= 0 failed for 2 row(s)"
        in report.error_message()
    )


def _duckdb():
    from ccss_pipeline.data.relational.backends import connect

    return connect({"backend": "duckdb"})


def test_unreadable_and_missing_files_fail_naming_them(tmp_path):
    broken = tmp_path / "log.csv"
    broken.write_text("user_id,video_id\n1,2\n3,4,5\n")  # a line with a field too many
    with pytest.raises(SourceError, match=str(broken)):  # DuckDB scans lazily: the gate's first read fails
        source = read_engine_source({"log": str(broken)}, _duckdb())
        validate_source_tables(source, source.origins, SCHEMA, ValidationConfig())
    with pytest.raises(SourceError, match="file not found"):
        read_engine_source({"log": str(tmp_path / "absent.parquet")}, _duckdb())
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match="empty"):
        EngineSourceDataset(tables={"log": str(empty)}).load()
