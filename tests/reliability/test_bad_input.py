"""Bad input not covered by tests/pipelines/test_data_pipelines.py: each case asserts its outcome.

Either a clear error naming the file, column and rule (wrong dtype), or a documented handling:

- timestamps out of order in the raw log: the join sorts by time (stable), so the log features stay
  leak-free and the splits stay time-ordered, exactly as with a sorted log;
- a feature whose values all fall in one bucket: it gets one bucket, CCSS never draws it (p = 0) and
  training runs;
- categorical ids at evaluation that training never saw: the out-of-vocabulary index 0, which the model
  scores like any rare id;
- extremely skewed values (1e12): log1p (count features) and standardization clipped to ±10, so dense
  inputs and the training loss stay finite;

and every persisted catalog entry is written atomically (temporary path, then rename).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, FeatureConfig, OptimizerConfig, SchemaConfig
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.validation import DataValidationError
from ccss_pipeline.encoding import DENSE_CLIP
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.scoring import predict_proba
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.trainer import train_model
from ccss_pipeline.spec import FeatureSpec, ModelInputs
from tests.kedro_project import REPO, downstream_files, make_project, run_pipelines
from tests.support.frame_stages import add_log_features, fit_feature_spec, to_model_input
from tests.support.own_table import own_table, write_own

SKEW = 1e12
OWN_SCHEMA = SchemaConfig(
    **yaml.safe_load((REPO / "conf" / "own_table" / "parameters_schema.yml").read_text())["schema"]
)
TINY = {
    "counterfactual_pairs": {"warmup_epochs": 1, "shapley": {"n_samples": 100, "n_permutations": 2}},
    "model_training": {"optimizer": {"batch_size": 64, "device": "cpu"}},
}


# ------------------------------------------------------------------------------------ wrong dtype
def _strings_in_numerical(frame: pd.DataFrame) -> pd.DataFrame:
    frame["item_rating"] = frame["item_rating"].astype(object)
    frame.loc[[3, 50, 400], "item_rating"] = "four stars"
    return frame


def _all_strings(frame: pd.DataFrame) -> pd.DataFrame:
    frame["user_age_days"] = "about " + frame["user_age_days"].astype(str) + " days"
    return frame


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mutation", "column"),
    [(_strings_in_numerical, "item_rating"), (_all_strings, "user_age_days")],
    ids=["some-strings", "all-strings"],
)
def test_numerical_column_holding_strings_fails_the_gate(tmp_path, mutation, column):
    root = make_project(tmp_path / "project")
    path = write_own(root, mutation(own_table()))
    with pytest.raises(DataValidationError) as info:
        run_pipelines(root, env="own_table")
    message = str(info.value)
    assert str(path) in message and f"column '{column}'" in message and "numeric dtype" in message, message
    assert "numeric dtype" in (root / "data" / "08_reporting" / "raw_validation.md").read_text()
    assert downstream_files(root) == []


# ------------------------------------------------------------------------------------ out-of-order log
def _bundle(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    frame = frame.copy()
    frame.attrs["origin"] = "interactions.csv"
    return {"log": frame}


def test_out_of_order_timestamps_are_sorted_by_the_join():
    """Handled: the join sorts by time, so a shuffled log gives the same leak-free features as a sorted one."""
    table = own_table(400, seed=3)
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    assert not pd.to_datetime(shuffled["event_time"]).is_monotonic_increasing
    a = add_log_features(build_interactions(_bundle(table), OWN_SCHEMA), OWN_SCHEMA.log_features)
    b = add_log_features(build_interactions(_bundle(shuffled), OWN_SCHEMA), OWN_SCHEMA.log_features)
    assert b["event_ts"].is_monotonic_increasing
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    # leak-free: a user's prior impressions count only strictly earlier events
    first = b.groupby("user")["event_ts"].transform("min")
    assert (b.loc[b["event_ts"] == first, "user_prior_impressions"] == 0).all()


# ------------------------------------------------- one shared own_table run: single bucket, skew, shuffled
@pytest.fixture(scope="module")
def hostile_project(tmp_path_factory) -> Path:
    """A valid but hostile table: shuffled rows, a directed feature with one value, 1e12 outliers."""
    frame = own_table(900, seed=5).sample(frac=1.0, random_state=1).reset_index(drop=True)
    frame["item_rating"] = 4.0  # directed (+1) and constant: one bucket
    frame.loc[[7, 70, 700], "item_price"] = SKEW  # directed (-1) count with log1p
    frame.loc[[8, 80, 800], "user_age_days"] = SKEW
    root = make_project(tmp_path_factory.mktemp("hostile") / "project")
    write_own(root, frame)
    run_pipelines(
        root,
        env="own_table",
        pipeline_names=["data_validation", "feature_engineering", "counterfactual_pairs"],
        runtime_params=TINY,
    )
    return root


def _spec(root: Path) -> FeatureSpec:
    return FeatureSpec.from_dict(json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text()))


def _inputs(root: Path, split: str, spec: FeatureSpec) -> ModelInputs:
    return ModelInputs.from_frame(pd.read_parquet(root / "data" / "05_model_input" / f"{split}.parquet"), spec)


@pytest.mark.slow
def test_shuffled_log_still_gives_time_ordered_splits(hostile_project):
    frames = {
        s: pd.read_parquet(hostile_project / "data" / "05_model_input" / f"{s}.parquet")
        for s in ("train", "validation", "test")
    }
    assert frames["train"]["event_ts"].is_monotonic_increasing
    assert frames["train"]["event_ts"].max() < frames["validation"]["event_ts"].min()
    assert frames["validation"]["event_ts"].max() < frames["test"]["event_ts"].min()


@pytest.mark.slow
def test_single_bucket_feature_is_never_drawn_and_training_runs(hostile_project):
    spec = _spec(hostile_project)
    k = [f.name for f in spec.numerical].index("item_rating")
    assert spec.numerical[k].n_buckets == 1 and spec.numerical[k].direction == 1
    importance = json.loads((hostile_project / "data" / "04_feature" / "feature_importance.json").read_text())
    assert importance["p"]["item_rating"] == 0.0
    assert sum(importance["p"].values()) == pytest.approx(1.0)
    pairs = PairTable.from_frame(
        pd.read_parquet(hostile_project / "data" / "05_model_input" / "counterfactual_pairs.parquet")
    )
    assert len(pairs) > 0 and k not in set(pairs.feature.tolist())
    train, valid = _inputs(hostile_project, "train", spec), _inputs(hostile_project, "validation", spec)
    result = train_model(
        spec,
        train,
        valid,
        BackboneConfig(hidden_units=[16]),
        ContrastiveConfig(weight=1.0),
        OptimizerConfig(batch_size=64, max_epochs=1, device="cpu"),
        pairs=pairs,
    )
    assert np.isfinite(result.history[0]["loss"])


@pytest.mark.slow
def test_skewed_values_give_finite_inputs_and_loss(hostile_project):
    spec = _spec(hostile_project)
    train = _inputs(hostile_project, "train", spec)
    assert np.isfinite(train.dense).all() and np.abs(train.dense).max() <= DENSE_CLIP
    price = [f.name for f in spec.numerical].index("item_price")
    assert np.all(np.diff(spec.numerical[price].centres) >= 0)  # buckets stay ordered
    result = train_model(
        spec,
        train,
        _inputs(hostile_project, "validation", spec),
        BackboneConfig(hidden_units=[16]),
        ContrastiveConfig(weight=0.0),
        OptimizerConfig(batch_size=64, max_epochs=1, device="cpu"),
    )
    assert np.isfinite(result.history[0]["loss"])


def test_skewed_identity_feature_is_clipped():
    """An identity-transformed column with 1e12 outliers: standardized then clipped to ±DENSE_CLIP."""
    schema = OWN_SCHEMA.model_copy(update={"log_features": []})
    frame = build_interactions(_bundle(own_table(300, seed=4)), schema)
    frame.loc[[5, 6], "item_rating"] = SKEW
    frame.loc[[9], "item_rating"] = -SKEW
    spec = fit_feature_spec(frame, schema, FeatureConfig(n_buckets=8))
    out = to_model_input(frame, spec)
    dense = out[[f.dense_column for f in spec.numerical]].to_numpy()
    assert np.isfinite(dense).all() and np.abs(dense).max() <= DENSE_CLIP
    rating = next(f for f in spec.numerical if f.name == "item_rating")
    assert (out.loc[[5, 6], rating.bucket_column] == rating.n_buckets - 1).all()  # quantile buckets are robust
    assert (out.loc[[9], rating.bucket_column] == 0).all()


# ------------------------------------------------------------------------------------ unseen ids
def test_ids_unseen_in_training_map_to_oov_and_are_scored():
    schema = OWN_SCHEMA.model_copy(update={"log_features": []})
    train = build_interactions(_bundle(own_table(300, seed=6)), schema)
    spec = fit_feature_spec(train, schema, FeatureConfig(n_buckets=8))
    test = train.iloc[:20].copy()
    test["user"] = [f"never-seen-user-{i}" for i in range(20)]
    test["item_category"] = "a category training never saw"
    test["device"] = None  # missing ids too
    out = to_model_input(test, spec)
    for name in ("user", "item_category", "device"):
        column = next(c.column for c in spec.categorical if c.name == name)
        assert (out[column] == 0).all(), name
    model = CTRModel(spec, BackboneConfig(hidden_units=[8])).eval()
    prob = predict_proba(model, ModelInputs.from_frame(out, spec))
    assert prob.shape == (20,) and np.isfinite(prob).all() and ((prob > 0) & (prob < 1)).all()


# ------------------------------------------------------------------------------------ atomic writes
ATOMIC = {
    "ccss_pipeline.datasets.AtomicDataset",
    "ccss_pipeline.datasets.ModelCollectionDataset",
    "ccss_pipeline.datasets.onnx.OnnxFolderDataset",
    "ccss_pipeline.datasets.ParquetChunksDataset",
    "ccss_pipeline.datasets.EngineTableDataset",
    # the typed records (datasets/records.py), written through files.atomic_write
    "ccss_pipeline.datasets.FeatureSpecDataset",
    "ccss_pipeline.datasets.FeatureImportanceDataset",
    "ccss_pipeline.datasets.ChosenParamsDataset",
    "ccss_pipeline.datasets.ValidationReportDataset",
}


def _read_only(entry: dict) -> bool:
    """Raw sources (possibly cached), the project folder, its lineage, folders read back and the study
    storage: their ``save`` raises."""
    inner = entry.get("dataset", entry) if entry.get("type") == "CachedDataset" else entry
    kind = inner["type"] if isinstance(inner, dict) else inner
    return kind.startswith("ccss_pipeline.datasets.") and kind.endswith(
        ("SourceDataset", "ProjectFolderDataset", "PngFolderDataset", "ProjectLineageDataset", "StudyStorageDataset")
    )


@pytest.mark.parametrize("env", ["base", "kuairand", "own_table"])
def test_every_written_catalog_entry_is_atomic(env):
    catalog = yaml.safe_load((REPO / "conf" / env / "catalog.yml").read_text()) or {}
    assert catalog, env
    for name, entry in catalog.items():
        if _read_only(entry) or entry["type"] in ("MemoryDataset", "kedro.io.MemoryDataset"):
            continue  # read only, or held in memory between two nodes: no file is written
        assert entry["type"] in ATOMIC, f"conf/{env}/catalog.yml: '{name}' ({entry['type']}) is not written atomically"
    if env == "base":
        assert "raw_source" in catalog and _read_only(catalog["raw_source"])


def test_read_only_entries_refuse_to_save(tmp_path):
    from kedro.io import DatasetError

    from ccss_pipeline.datasets import PngFolderDataset, ProjectLineageDataset, SyntheticSourceDataset

    with pytest.raises(DatasetError, match="read-only"):
        SyntheticSourceDataset(n_users=5).save({})
    with pytest.raises(DatasetError, match="read-only"):
        PngFolderDataset(str(tmp_path)).save({})
    with pytest.raises(DatasetError, match="read-only"):
        ProjectLineageDataset(str(tmp_path)).save({})
