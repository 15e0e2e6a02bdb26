"""AtomicDataset: a save writes the final file and nothing else; a failing save leaves the old file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io import AbstractDataset, DatasetError

from ccss_pipeline.datasets import AtomicDataset


class PartialThenFail(AbstractDataset):
    """Writes a few bytes to its filepath, then raises: a save killed mid-way."""

    def __init__(self, filepath: str, metadata=None):
        self._filepath = Path(filepath)

    def load(self):
        return self._filepath.read_bytes()

    def save(self, data) -> None:
        self._filepath.write_bytes(b"PAR")
        raise RuntimeError("disk full (simulated)")

    def _describe(self):
        return {"filepath": str(self._filepath)}


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_parquet_save_is_atomic_and_loads_back(tmp_path):
    target = tmp_path / "deep" / "layer" / "table.parquet"
    ds = AtomicDataset({"type": "pandas.ParquetDataset", "filepath": str(target)})
    assert not ds.exists()
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ds.save(frame)
    assert ds.exists()
    assert _siblings(target) == ["table.parquet"]  # no temporary file remains
    pd.testing.assert_frame_equal(ds.load(), frame)
    ds.save(frame.iloc[:1])  # overwrite
    assert _siblings(target) == ["table.parquet"]
    assert len(ds.load()) == 1


def test_filepath_on_the_wrapper_and_string_type(tmp_path):
    target = tmp_path / "report.json"
    ds = AtomicDataset("json.JSONDataset", filepath=str(target))
    ds.save({"success": True, "n": 3})
    assert ds.load() == {"success": True, "n": 3}
    assert _siblings(target) == ["report.json"]
    assert str(target) in str(ds._describe())


def test_missing_filepath_is_an_error():
    with pytest.raises(ValueError, match="filepath"):
        AtomicDataset({"type": "json.JSONDataset"})


def test_failing_save_keeps_previous_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"the previous, complete file")
    ds = AtomicDataset({"type": f"{__name__}.PartialThenFail", "filepath": str(target)})
    with pytest.raises(DatasetError, match="disk full"):
        ds.save(b"new")
    assert target.read_bytes() == b"the previous, complete file"
    assert _siblings(target) == ["model.bin"]  # the partial temporary file was removed


def test_unserializable_frame_keeps_previous_parquet(tmp_path):
    target = tmp_path / "t.parquet"
    ds = AtomicDataset({"type": "pandas.ParquetDataset", "filepath": str(target)})
    good = pd.DataFrame({"a": [1, 2]})
    ds.save(good)
    bad = pd.DataFrame({"a": [object(), object()]})  # pyarrow cannot serialize arbitrary objects
    with pytest.raises(Exception):  # noqa: B017 - Kedro wraps the pyarrow error
        ds.save(bad)
    pd.testing.assert_frame_equal(ds.load(), good)
    assert _siblings(target) == ["t.parquet"]


def test_failing_save_without_previous_file_leaves_nothing(tmp_path):
    target = tmp_path / "new.bin"
    ds = AtomicDataset({"type": f"{__name__}.PartialThenFail", "filepath": str(target)})
    with pytest.raises(DatasetError):
        ds.save(b"x")
    assert not target.exists() and not ds.exists()
    assert list(tmp_path.iterdir()) == []
