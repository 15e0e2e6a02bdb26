"""The data pipelines on a source the engine reads (EngineSourceDataset): a kedro run gates every row a
batch at a time, joins on the engine and writes the model-ready tables; bad rows stop it with the
gate's message and nothing downstream is written."""

from __future__ import annotations

import pandas as pd
import pytest

from ccss_pipeline.data.synthetic import SyntheticConfig, write_parquet
from tests.kedro_project import SPLITS, downstream_files, make_project, run_pipelines


def _project(tmp_path, raw):
    tables = {name: str(path) for name, path in raw.items()}
    catalog = {
        "raw_source": {
            "type": "ccss_pipeline.datasets.EngineSourceDataset",
            "tables": tables,
            "engine": "${globals:data_engine}",
        }
    }
    return make_project(
        tmp_path / "project", local_catalog=catalog, local_parameters={"data_validation": {"batch_rows": 2000}}
    )


def test_engine_source_runs_the_data_pipelines(tmp_path):
    raw = write_parquet(SyntheticConfig(n_users=200, n_videos=300, n_days=6, seed=3), tmp_path / "raw", chunk_rows=1500)
    root = _project(tmp_path, raw)
    run_pipelines(root)
    report = (root / "data" / "08_reporting" / "raw_validation.md").read_text()
    assert "**Result: PASSED**" in report and "engine:unique" in report  # whole-table rules on the engine
    log_rows = sum(len(pd.read_parquet(p)) for p in raw["log"].glob("*.parquet"))
    interactions = pd.read_parquet(root / "data" / "02_intermediate" / "interactions.parquet")
    assert len(interactions) == log_rows and interactions["row"].tolist() == list(range(log_rows))
    sizes = [len(pd.read_parquet(root / "data" / "05_model_input" / f"{s}.parquet")) for s in SPLITS]
    assert sum(sizes) == log_rows and min(sizes) > 0
    truth = (root / "data" / "02_intermediate" / "source_truth.json").read_text()
    assert '"hist_ctr": 1' in truth  # the directions table read by the engine too


def test_bad_rows_in_an_engine_source_stop_the_run_before_anything_downstream(tmp_path):
    raw = write_parquet(SyntheticConfig(n_users=150, n_videos=200, n_days=4, seed=5), tmp_path / "raw", chunk_rows=1500)
    first = sorted(raw["log"].glob("*.parquet"))[-1]
    log = pd.read_parquet(first)
    log.loc[[0, 1, 2], "is_click"] = 7
    log.to_parquet(first, index=False)
    root = _project(tmp_path, raw)
    with pytest.raises(Exception, match=r"label in \{0, 1\} failed for 3 row\(s\)") as info:
        run_pipelines(root)
    assert str(raw["log"]) in str(info.value) and "is_click" in str(info.value)
    assert downstream_files(root) == []
    assert "FAILED" in (root / "data" / "08_reporting" / "raw_validation.md").read_text()
