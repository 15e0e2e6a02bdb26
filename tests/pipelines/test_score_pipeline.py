"""The score pipeline (issue 16): new raw rows, label optional, through the gate, the training log's
history, the persisted transformer and the chosen model per backbone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import LogFeature, SchemaConfig, ValidationConfig
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.relational.in_memory import in_memory
from ccss_pipeline.data.scoring import with_history_log_features
from ccss_pipeline.data.sources import synthetic_bundle
from ccss_pipeline.data.synthetic import SyntheticConfig
from tests.kedro_project import REPO
from tests.support.frame_stages import add_log_features

SCHEMA = SchemaConfig.model_validate(
    yaml.safe_load((REPO / "conf" / "base" / "parameters_schema.yml").read_text())["schema"]
)
FEATURES = [
    LogFeature(name=f"{e}_{s}", entity=e, stat=s)
    for e in ("user", "item")
    for s in ("impressions", "clicks", "smoothed_ctr", "active_days")
]


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    bundle = synthetic_bundle(SyntheticConfig(n_users=150, n_videos=120, n_days=6, impressions_per_user_day=4, seed=3))
    return build_interactions(bundle, SCHEMA)


def _split(log: pd.DataFrame, n_new: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    history = log.iloc[:-n_new].reset_index(drop=True)
    new = log.iloc[-n_new:].drop(columns=["label"]).reset_index(drop=True).assign(row=lambda f: np.arange(len(f)))
    return history, new


def test_rows_to_score_see_the_history_and_not_each_other(log):
    schema = SCHEMA.model_copy(update={"log_features": FEATURES})
    history, new = _split(log, 300)
    past = in_memory(history)  # the training log, as the catalog gives it: an engine table
    together = with_history_log_features(new, past, schema)
    names = [f.name for f in FEATURES]
    for i in (0, 150, 299):  # scored alone: the same features
        alone = with_history_log_features(new.iloc[[i]], past, schema)
        np.testing.assert_allclose(together.loc[i, names].to_numpy(float), alone.loc[0, names].to_numpy(float))
    # a lone new row gets exactly the features the training path gives the log's next row
    full = add_log_features(log.iloc[: len(history) + 1], FEATURES)
    alone = with_history_log_features(new.iloc[[0]], past, schema)
    np.testing.assert_allclose(full.iloc[-1][names].to_numpy(float), alone.loc[0, names].to_numpy(float))
    assert together["row"].tolist() == list(range(300))  # the input order


def test_the_gate_checks_the_label_only_when_it_is_there(log):
    from ccss_pipeline.data.validation import validate_source

    bundle = synthetic_bundle(SyntheticConfig(n_users=50, n_videos=40, n_days=2, seed=5))
    unlabelled = {**bundle, "log": bundle["log"].drop(columns=[SCHEMA.label])}
    assert validate_source(unlabelled, {}, SCHEMA, ValidationConfig(), label_required=False).success
    assert not validate_source(unlabelled, {}, SCHEMA, ValidationConfig()).success  # training needs it
    bad = {**bundle, "log": bundle["log"].assign(**{SCHEMA.label: 2})}
    report = validate_source(bad, {}, SCHEMA, ValidationConfig(), label_required=False)
    assert not report.success and "label in {0, 1}" in report.error_message()


# --------------------------------------------------------------------------- end to end
def _project(trained_project: Path, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(trained_project, root)
    shutil.copytree(REPO / "conf" / "base", root / "conf" / "base", dirs_exist_ok=True)
    return root


def _score_from_files(
    root: Path, log: pd.DataFrame, users: pd.DataFrame, videos: pd.DataFrame, chunk_rows: int | None = None
) -> None:
    folder = root / "data" / "01_raw" / "to_score"
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("log", log), ("users", users), ("videos", videos)):
        frame.to_csv(folder / f"{name}.csv", index=False)
    catalog_path = root / "conf" / "local" / "catalog.yml"
    catalog = yaml.safe_load(catalog_path.read_text()) or {}
    catalog["score_source"] = {
        "type": "ccss_pipeline.datasets.TableSourceDataset",
        "filepath": str(folder / "log.csv"),
        "side_tables": {"users": str(folder / "users.csv"), "videos": str(folder / "videos.csv")},
        **({"chunk_rows": chunk_rows} if chunk_rows else {}),
    }
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))


#: rows per chunk of the streamed runs: three chunks of the 2,822-row log, the last one short (each chunk
#: is validated on its own, ~1 s of Great Expectations: 97 rows a chunk made 30 of them, twice)
CHUNK_ROWS = 997


@pytest.mark.slow
def test_score_with_and_without_label_and_bad_rows(trained_project, tmp_path):
    from tests.kedro_project import run_pipelines

    root = _project(trained_project, tmp_path)
    bundle = synthetic_bundle(SyntheticConfig(n_users=200, n_videos=200, n_days=2, seed=21))
    scores_path = root / "data" / "07_model_output" / "scores.parquet"

    _score_from_files(root, bundle["log"], bundle["users"], bundle["videos"])
    run_pipelines(root, pipeline_names=["score"])
    labelled = pd.read_parquet(scores_path)
    assert len(labelled) == len(bundle["log"]) and labelled["row"].tolist() == list(range(len(bundle["log"])))
    assert labelled["p_dnn"].between(0, 1).all() and "is_click" in labelled.columns
    np.testing.assert_array_equal(labelled["is_click"].to_numpy(), bundle["log"]["is_click"].to_numpy())

    _score_from_files(root, bundle["log"].drop(columns=["is_click"]), bundle["users"], bundle["videos"])
    run_pipelines(root, pipeline_names=["score"])
    unlabelled = pd.read_parquet(scores_path)
    assert "is_click" not in unlabelled.columns
    # the label of a row to score never reaches any row's features: the same scores without it
    np.testing.assert_allclose(unlabelled["p_dnn"].to_numpy(), labelled["p_dnn"].to_numpy(), rtol=1e-6)

    # streamed: read and scored CHUNK_ROWS rows at a time, the same scores in the same order
    _score_from_files(
        root, bundle["log"].drop(columns=["is_click"]), bundle["users"], bundle["videos"], chunk_rows=CHUNK_ROWS
    )
    run_pipelines(root, pipeline_names=["score"])
    streamed = pd.read_parquet(scores_path)
    assert -(-len(bundle["log"]) // CHUNK_ROWS) == 3 and len(bundle["log"]) % CHUNK_ROWS  # several chunks, one short
    pd.testing.assert_frame_equal(streamed, unlabelled)

    # a bad row in the last chunk: the gate fails before any score is written, the old file stays
    broken = bundle["log"].copy()
    broken.loc[len(broken) - 3, "hist_ctr"] = np.nan
    _score_from_files(root, broken, bundle["users"], bundle["videos"], chunk_rows=CHUNK_ROWS)
    with pytest.raises(Exception, match=r"hist_ctr.*values finite \(no NaN\)|values finite \(no NaN\).*hist_ctr"):
        run_pipelines(root, pipeline_names=["score"])
    pd.testing.assert_frame_equal(pd.read_parquet(scores_path), unlabelled)

    scores_path.unlink()
    broken = bundle["log"].copy()
    broken.loc[5, "hist_ctr"] = np.nan
    _score_from_files(root, broken, bundle["users"], bundle["videos"])
    with pytest.raises(Exception, match=r"hist_ctr.*values finite \(no NaN\)|values finite \(no NaN\).*hist_ctr"):
        run_pipelines(root, pipeline_names=["score"])
    assert not scores_path.exists(), "nothing is written when the gate fails"
    report = (root / "data" / "08_reporting" / "score_validation.md").read_text()
    assert "FAILED" in report and "hist_ctr" in report


def test_a_table_read_in_chunks_equals_the_table(tmp_path):
    from ccss_pipeline.data.sources import SourceError, iter_table, read_table

    frame = pd.DataFrame({"a": np.arange(1000), "b": np.random.default_rng(0).normal(size=1000).round(6)})
    for suffix in ("csv", "parquet"):
        path = tmp_path / f"t.{suffix}"
        frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
        chunks = list(iter_table(path, 300))
        assert [len(c) for c in chunks] == [300, 300, 300, 100]
        pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read_table(path), check_dtype=False)
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    with pytest.raises(SourceError, match="repeats column name"):
        list(iter_table(tmp_path / "dup.csv", 10))


def test_chunked_parquet_writes_are_atomic(tmp_path):
    from ccss_pipeline.datasets import ParquetChunksDataset

    target = tmp_path / "scores.parquet"
    dataset = ParquetChunksDataset(str(target))
    dataset.save(iter([pd.DataFrame({"row": [0, 1], "p": [0.1, 0.2]}), pd.DataFrame({"row": [2], "p": [0.3]})]))
    assert dataset.load()["row"].tolist() == [0, 1, 2]

    def failing():
        yield pd.DataFrame({"row": [9], "p": [0.9]})
        raise RuntimeError("model crashed on chunk 2")

    with pytest.raises(Exception, match="chunk 2"):
        dataset.save(failing())
    assert dataset.load()["row"].tolist() == [0, 1, 2]  # the previous file stays
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]  # no temporary left
