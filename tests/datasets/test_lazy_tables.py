"""Tables the catalog hands over unread (issue 14): footers, lineage attrs and rows on demand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ccss_pipeline.datasets import EngineTableDataset, ParquetChunksDataset
from ccss_pipeline.lineage import SPEC_KEY, StaleArtifactError, table_fingerprint
from ccss_pipeline.parquet_table import ATTRS_FILE, ParquetTable


def _frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"a": range(start, start + n), "b": [0.5] * n})


def test_a_pandas_written_table_keeps_its_attrs_and_reads_only_what_is_asked(tmp_path):
    frame = _frame(1_000)
    frame.attrs[SPEC_KEY] = "abc"
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=300, index=False)
    table = ParquetTable(tmp_path / "t.parquet")
    assert table.num_rows == 1_000 and [r for _, _, r in table.row_groups] == [300, 300, 300, 100]
    assert table_fingerprint(table) == "abc" and table.columns == ["a", "b"]
    assert list(table.read_row_group(3)["a"]) == list(range(900, 1_000))
    assert table.frame(["a"]).columns.tolist() == ["a"] and table.frame().attrs[SPEC_KEY] == "abc"
    assert table["a"].tolist() == list(range(1_000))  # one column, as a frame's
    assert sum(len(f) for f in table.iter_frames()) == 1_000


def test_a_spark_folder_reads_its_sidecar_attrs(tmp_path):
    folder = tmp_path / "t.parquet"
    folder.mkdir()
    _frame(10).to_parquet(folder / "part-00000.parquet", index=False)
    _frame(5, 10).to_parquet(folder / "part-00001.parquet", index=False)
    (folder / ATTRS_FILE).write_text(json.dumps({SPEC_KEY: "xyz"}))
    (folder / "_SUCCESS").write_text("")
    table = ParquetTable(folder)
    assert table.num_rows == 15 and table_fingerprint(table) == "xyz" and len(table.files) == 2
    assert table.frame().attrs[SPEC_KEY] == "xyz"


def test_a_missing_table_names_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        ParquetTable(tmp_path / "nope.parquet")


def test_engine_table_dataset_loads_lazily(tmp_path):
    frame = _frame(50)
    frame.attrs[SPEC_KEY] = "s1"
    ds = EngineTableDataset(str(tmp_path / "m.parquet"), load_as="lazy")
    ds.save(frame)
    loaded = ds.load()
    assert isinstance(loaded, ParquetTable) and len(loaded) == 50 and table_fingerprint(loaded) == "s1"
    with pytest.raises(ValueError, match="load_as"):
        EngineTableDataset(str(tmp_path / "m.parquet"), load_as="eager")


def test_chunks_keep_the_first_chunks_attrs_and_load_either_way(tmp_path):
    chunks = [_frame(4), _frame(3, 4)]
    for c in chunks:
        c.attrs[SPEC_KEY] = "fp"
    target = tmp_path / "pairs.parquet"
    ParquetChunksDataset(str(target)).save(iter(chunks))
    frame = ParquetChunksDataset(str(target)).load()
    lazy = ParquetChunksDataset(str(target), load_as="lazy").load()
    assert list(frame["a"]) == list(range(7)) and frame.attrs[SPEC_KEY] == "fp"
    assert isinstance(lazy, ParquetTable) and table_fingerprint(lazy) == "fp" and len(lazy.row_groups) == 2


def test_a_stale_lazy_table_is_refused_like_a_frame(tmp_path):
    from ccss_pipeline.lineage import require_spec
    from tests.model.conftest import make_spec

    spec = make_spec()
    frame = _frame(3)
    frame.attrs[SPEC_KEY] = "another"
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    with pytest.raises(StaleArtifactError, match="train_model_input"):
        require_spec("train_model_input", ParquetTable(tmp_path / "train.parquet"), spec, "feature_engineering")
