"""Raw-source readers: strict CSV/TSV reading, the KuaiRand layout, own tables, Kedro source datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.data import sources
from ccss_pipeline.data.sources import (
    SourceError,
    origin_of,
    read_kuairand,
    read_own_table,
    read_table,
    synthetic_bundle,
)
from ccss_pipeline.data.synthetic import SyntheticConfig


def _write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# ---------------------------------------------------------------- read_table: good files


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.csv", "a,b,c\n1,2,x\n4,5,y\n"),
        ("t.tsv", "a\tb\tc\n1\t2\tx\n4\t5\ty\n"),
        ("t.txt", "a\tb\tc\n1\t2\tx\n4\t5\ty\n"),  # tab sniffed from the header
        ("t.csv", "a;b;c\n1;2;x\n4;5;y\n"),  # semicolon is an accepted separator
    ],
)
def test_read_table_reads_separators(tmp_path, name, content):
    frame = read_table(_write(tmp_path / name, content))
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["a"].tolist() == [1, 4] and frame["c"].tolist() == ["x", "y"]
    assert origin_of(frame, "?") == str(tmp_path / name)


def test_read_table_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]}).to_parquet(path)
    frame = read_table(path)
    assert frame.shape == (2, 2) and origin_of(frame, "?") == str(path)


# ---------------------------------------------------------------- read_table: bad files


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"\n\n", "no columns"),
        (b"a|b|c\n1|2|3\n", "wrong delimiter"),  # one column read
        (b"abc\n1\n2\n", "only one column"),
        (b"a,b,c\n1,\xff\xfe,3\n", "UTF-8"),
        (b"a,b,c\n1,2,3\n4,5,6,7\n", "cannot be parsed"),  # a ragged row (too many fields)
        (b'a,b,c\n1,2,3\n4,"ab', "cannot be parsed"),  # truncated inside a quoted field
    ],
    ids=["empty", "blank-lines", "pipe-delimiter", "one-column", "non-utf8", "ragged", "truncated-quote"],
)
def test_read_table_rejects_bad_files_naming_them(tmp_path, content, needle):
    path = _write(tmp_path / "bad_log.csv", content)
    with pytest.raises(SourceError, match=needle) as info:
        read_table(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"a,b,c\n1,2,3\n4,5", b"a;b;c\n1,2,3\n4,5,6\n"],
    ids=["truncated-last-row", "semicolon-header-comma-rows"],
)
def test_read_table_rejects_rows_shorter_than_the_header(tmp_path, content):
    """A file cut mid-row (or read with the wrong separator) must fail, not be padded with NaN.

    ``read_table`` promises "truncation ... fail[s] naming the file"; pandas' C parser silently fills
    missing trailing fields of a short row with NaN, so a strict field-count check is needed.
    """
    path = _write(tmp_path / "short.csv", content)
    with pytest.raises(SourceError) as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_read_table_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "log.csv"
    with pytest.raises(SourceError, match="file not found") as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_source_error_is_a_value_error():
    assert issubclass(SourceError, ValueError)


# ---------------------------------------------------------------- KuaiRand layout


def test_read_kuairand_shared_files(kuairand_dir):
    bundle = read_kuairand(kuairand_dir)
    assert set(bundle) == {"log", "users", "videos"}
    log, users, videos = bundle["log"], bundle["users"], bundle["videos"]
    assert len(log) == 41_828
    assert {"user_id", "video_id", "time_ms", "is_click", "duration_ms"} <= set(log.columns)
    assert log["is_click"].isin([0, 1]).all()
    assert len(users) == 27_285 and users["user_id"].is_unique
    assert len(videos) == 7_583 and videos["video_id"].is_unique
    assert "log_like_hate_kcore15.tsv" in origin_of(log, "")
    assert "user_features_pure.csv" in origin_of(users, "")
    assert "video_features_basic_pure.csv" in origin_of(videos, "")
    assert set(log["user_id"]) <= set(users["user_id"])  # every log user joins the user table


def _kuairand_dir(root: Path, n_logs: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_logs):
        pd.DataFrame(
            {
                "user_id": [1, 2],
                "video_id": [10 + i, 20 + i],
                "time_ms": [1_650_000_000_000 + i, 1_650_000_000_500 + i],
                "is_click": [0, 1],
            }
        ).to_csv(root / f"log_standard_part{i}.csv", index=False)
    pd.DataFrame({"user_id": [1, 2], "register_days": [5, 6]}).to_csv(root / "user_features_x.csv", index=False)
    return root


def test_read_kuairand_concatenates_log_files(tmp_path):
    bundle = read_kuairand(_kuairand_dir(tmp_path / "kr", n_logs=3))
    assert len(bundle["log"]) == 6
    assert sorted(bundle["log"]["video_id"]) == [10, 11, 12, 20, 21, 22]
    origin = origin_of(bundle["log"], "")
    assert all(f"log_standard_part{i}.csv" in origin for i in range(3))
    assert "videos" not in bundle  # no video table in this folder: optional
    assert bundle["users"]["register_days"].tolist() == [5, 6]


def test_read_kuairand_rejects_mismatched_log_columns(tmp_path):
    root = _kuairand_dir(tmp_path / "kr", n_logs=1)
    pd.DataFrame({"user_id": [1], "video_id": [3], "is_click": [1]}).to_csv(root / "log_standard_z.csv", index=False)
    with pytest.raises(SourceError, match="disagree on their columns") as info:
        read_kuairand(root)
    assert "log_standard_z.csv" in str(info.value) and "log_standard_part0.csv" in str(info.value)


def test_read_kuairand_merges_video_tables_statistics_win(tmp_path):
    root = _kuairand_dir(tmp_path / "kr", n_logs=1)
    pd.DataFrame({"video_id": [10, 11], "video_type": ["NORMAL", "AD"], "n": [1, 1]}).to_csv(
        root / "video_features_basic_x.csv", index=False
    )
    pd.DataFrame({"video_id": [11, 12], "show_cnt": [7, 8], "n": [2, 2]}).to_csv(
        root / "video_features_statistic_x.csv", index=False
    )
    videos = read_kuairand(root)["videos"].sort_values("video_id").reset_index(drop=True)
    assert videos["video_id"].tolist() == [10, 11, 12]  # outer join
    assert videos["n"].tolist()[1:] == [2, 2]  # statistics win on shared names
    assert videos.loc[0, "video_type"] == "NORMAL" and np.isnan(videos.loc[0, "show_cnt"])
    origin = origin_of(videos, "")
    assert "video_features_basic_x.csv" in origin and "video_features_statistic_x.csv" in origin


def test_read_kuairand_missing_folder_or_logs(tmp_path):
    with pytest.raises(SourceError, match="folder not found"):
        read_kuairand(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no log file") as info:
        read_kuairand(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)


# ---------------------------------------------------------------- own tables and synthetic bundle


def test_read_own_table_with_side_tables(tmp_path):
    log = _write(tmp_path / "log.csv", "user_id,item_id,clicked\n1,7,0\n2,8,1\n")
    items = _write(tmp_path / "items.tsv", "item_id\tprice\n7\t1.5\n8\t2.5\n")
    bundle = read_own_table(log, {"items": str(items)})
    assert set(bundle) == {"log", "items"}
    assert bundle["items"]["price"].tolist() == [1.5, 2.5]
    assert origin_of(bundle["items"], "") == str(items)


def test_read_own_table_bad_side_table_names_it(tmp_path):
    log = _write(tmp_path / "log.csv", "user_id,item_id,clicked\n1,7,0\n")
    with pytest.raises(SourceError, match="items.csv"):
        read_own_table(log, {"items": str(tmp_path / "items.csv")})


def test_synthetic_bundle_names_the_generator():
    bundle = synthetic_bundle(SyntheticConfig(n_users=20, n_videos=30, n_days=2, seed=5))
    assert set(bundle) == {"log", "users", "videos", "directions"}
    assert "seed=5" in origin_of(bundle["log"], "") and origin_of(bundle["users"], "").endswith("users")


# ---------------------------------------------------------------- Kedro source datasets


def test_table_source_dataset_loads_and_is_read_only(tmp_path):
    from kedro.io import DatasetError

    from ccss_pipeline.datasets import TableSourceDataset

    path = _write(tmp_path / "log.csv", "user_id,item_id,clicked\n1,7,0\n2,8,1\n")
    ds = TableSourceDataset(filepath=str(path))
    assert ds.exists()
    assert len(ds.load()["log"]) == 2
    with pytest.raises(DatasetError, match="read-only"):
        ds.save({"log": pd.DataFrame()})
    missing = TableSourceDataset(filepath=str(tmp_path / "nope.csv"))
    assert not missing.exists()
    with pytest.raises(DatasetError, match="nope.csv"):
        missing.load()


def test_kuairand_and_synthetic_source_datasets(tmp_path):
    from kedro.io import DatasetError

    from ccss_pipeline.datasets import KuaiRandSourceDataset, SyntheticSourceDataset

    root = _kuairand_dir(tmp_path / "kr", n_logs=2)
    ds = KuaiRandSourceDataset(path=str(root), log_patterns=["log_standard_part1.csv"])
    assert ds.exists() and len(ds.load()["log"]) == 2
    with pytest.raises(DatasetError, match="folder not found"):
        KuaiRandSourceDataset(path=str(tmp_path / "absent")).load()
    synth = SyntheticSourceDataset(n_users=15, n_videos=20, n_days=2, seed=1)
    a, b = synth.load(), synth.load()
    pd.testing.assert_frame_equal(a["log"], b["log"])
    with pytest.raises(TypeError):
        SyntheticSourceDataset(n_userz=3)  # a typo in the catalog is an error


def test_sniff_separator_defaults_to_comma(tmp_path):
    assert sources._sniff_separator(_write(tmp_path / "x.csv", "abc\n")) == ","
    assert sources._sniff_separator(_write(tmp_path / "x.tsv", "a,b\n")) == "\t"
