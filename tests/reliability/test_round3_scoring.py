"""Issue 28 ("reliability round 3"), items 1-6 and 10: scoring and serving inputs that went wrong silently.

Each test failed on the code before issue 28: ids stored as float64 (``63.0``) all encoded out of
vocabulary; one blank in an integer-coded categorical took the category from every row of its file or
chunk (so a row's score depended on the chunk size); a training log replaced by ``data_validation`` on
another table was read as the scoring history; ``score_onnx.py`` scored with ``--batch-size -5``, cast
bool, fractional and text ids, wrote over its input and used a ``.json`` of another export; a password
holding ``@`` was logged half unmasked; string ids where training had integers crashed inside DuckDB.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ccss_pipeline.config import BackboneConfig, FeatureConfig, TrainingConfig
from ccss_pipeline.data.history import history_fingerprint
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.relational.in_memory import in_memory
from ccss_pipeline.data.scoring import ScoreInputError, with_history_log_features
from ccss_pipeline.data.sources import ChunkedSource, read_table, synthetic_bundle
from ccss_pipeline.data.synthetic import SyntheticConfig
from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.persistence import TrainedModel
from ccss_pipeline.pipelines.score.nodes import score_rows
from ccss_pipeline.serving import export_onnx
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, FeatureSpec
from ccss_pipeline.tuning.study_storage import SearchStorageError, open_storage, safe_url
from tests.kedro_project import REPO
from tests.model.conftest import make_inputs, make_spec
from tests.support.configs import project_schema, tiny_training
from tests.support.frame_stages import add_log_features, fit_feature_spec, to_model_input

SCHEMA = project_schema("base")
PASSED = ValidationReport(success=True, title="Scoring data validation")
SYNTH = {"n_users": 150, "n_videos": 120, "impressions_per_user_day": 4.0}


@dataclass(frozen=True)
class Scoring:
    """A spec fitted on a small synthetic training log, a random model (wide embeddings, so a changed
    category moves the score) saved as the chosen CCSS model, and a fresh log to score."""

    history: pd.DataFrame
    spec: FeatureSpec
    trained: dict[str, TrainedModel]
    training: TrainingConfig
    new: dict[str, pd.DataFrame]

    def score(self, source, history: pd.DataFrame | None = None, spec: FeatureSpec | None = None) -> pd.DataFrame:
        chunks = score_rows(
            source,
            PASSED,
            in_memory(self.history if history is None else history),  # the catalog gives an engine table
            spec or self.spec,
            self.trained,
            SCHEMA,
            self.training,
        )
        return pd.concat(list(chunks), ignore_index=True)


@pytest.fixture(scope="module")
def scoring() -> Scoring:
    torch.set_num_threads(1)
    bundle = synthetic_bundle(SyntheticConfig(n_days=4, seed=3, **SYNTH))
    history = build_interactions(bundle, SCHEMA)
    train = add_log_features(history, SCHEMA.log_features)
    spec = fit_feature_spec(train, SCHEMA, FeatureConfig(n_buckets=8))
    spec = replace(spec, history=history_fingerprint(in_memory(history)))
    torch.manual_seed(0)
    model = CTRModel(spec, BackboneConfig(hidden_units=[8], embedding_dim=4, embedding_init_std=0.5)).eval()
    training = tiny_training()
    trained = {"dnn__ccss__seed42": TrainedModel.of(model, spec, "ccss", training.optimizer.seed)}
    new = synthetic_bundle(SyntheticConfig(n_days=1, seed=21, **SYNTH))
    new = {name: new[name] for name in ("log", "users", "videos")}
    return Scoring(history, spec, trained, training, new)


def _csv_round_trip(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame.to_csv(path, index=False)
    return read_table(path)


def _rows(scoring: Scoring, source: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The canonical rows of a labelled source with their log features, ready to encode."""
    return with_history_log_features(
        build_interactions(source, SCHEMA, for_scoring=True), in_memory(scoring.history), SCHEMA
    )


def _oov_share(scoring: Scoring, source: dict[str, pd.DataFrame], feature: str) -> float:
    return float((to_model_input(_rows(scoring, source), scoring.spec)[f"cat__{feature}"] == 0).mean())


# ------------------------------------------------------------------------ 1. ids stored as float64
def test_ids_stored_as_float64_score_as_the_integers_they_spell(scoring, tmp_path):
    """pandas writes an id column that once held a NaN as ``63.0``; every row used to go out of
    vocabulary (exit 0, no warning)."""
    reference = scoring.score(scoring.new)
    assert _oov_share(scoring, scoring.new, "user") < 0.2, "the integer ids are mostly in vocabulary"
    log = scoring.new["log"].astype({"user_id": "float64", "video_id": "float64"})
    floats = _csv_round_trip(log, tmp_path / "log.csv")
    assert floats["user_id"].dtype == np.float64 and floats["video_id"].dtype == np.float64
    scored = scoring.score({**scoring.new, "log": floats})
    np.testing.assert_allclose(scored["p_dnn"].to_numpy(), reference["p_dnn"].to_numpy(), rtol=1e-6)
    assert scored["row"].tolist() == reference["row"].tolist()


def test_the_engine_matches_integral_floats_and_leaves_fractions_out_of_vocabulary(scoring):
    """The encoding itself (evaluation and notebooks use it too): 63.0 finds 63, 63.5 and NaN find nothing."""
    rows = _rows(scoring, scoring.new).head(50)
    as_int = to_model_input(rows, scoring.spec)
    users = rows["user"].astype("float64")
    as_float = to_model_input(rows.assign(user=users), scoring.spec)
    np.testing.assert_array_equal(as_float["cat__user"], as_int["cat__user"])
    assert (as_int["cat__user"] > 0).mean() > 0.8
    odd = to_model_input(rows.assign(user=users + 0.5), scoring.spec)
    assert (odd["cat__user"] == 0).all()


def test_fractional_ids_are_refused_naming_the_column(scoring):
    log = scoring.new["log"].astype({"video_id": "float64"})
    log.loc[7, "video_id"] = 12.5
    with pytest.raises(ScoreInputError, match=r"column 'video_id'.*not whole numbers.*12\.5"):
        scoring.score({**scoring.new, "log": log})


# ------------------------------------------------------ 2. one blank in an integer-coded categorical
def test_a_blank_category_touches_its_own_row_alone_and_any_chunking_scores_alike(scoring, tmp_path):
    """``tag`` (integer-coded) given in the log itself, one value blank: the file read whole and in
    chunks of 300 or 120 rows (the blank's chunk alone turns float: the first of three, the second of six)
    scores every other row exactly as the complete file, and the blank row identically in all three."""
    tags = scoring.new["videos"].set_index("video_id")["tag"]
    log = scoring.new["log"].assign(tag=lambda f: f["video_id"].map(tags).astype("int64"))
    reference = scoring.score({**scoring.new, "log": log})
    blank = 130
    path = tmp_path / "log.csv"
    log.assign(tag=log["tag"].astype("Int64").where(log.index != blank)).to_csv(path, index=False)  # "23", ""
    sides = {"users": scoring.new["users"], "videos": scoring.new["videos"]}
    whole = scoring.score({"log": read_table(path), **sides})
    others = reference.index != blank
    np.testing.assert_allclose(whole.loc[others, "p_dnn"], reference.loc[others, "p_dnn"], rtol=1e-6)
    assert whole.loc[blank, "p_dnn"] != pytest.approx(reference.loc[blank, "p_dnn"], rel=1e-6)
    for chunk_rows in (300, 120):  # each chunk is joined and encoded on its own: a few are enough
        assert len(log) > 2 * chunk_rows  # three chunks or more
        chunked = scoring.score(ChunkedSource(path, chunk_rows, sides))
        pd.testing.assert_frame_equal(chunked, whole, check_dtype=False)


# ----------------------------------------------------------------- 10. text ids where training had integers
def test_text_ids_where_training_had_integers_are_refused_before_the_engine(scoring):
    """They used to pass the gate (log and side table alike) and crash inside DuckDB's cast, reported
    as a failure to save the scores. Now the node call itself refuses, naming the column."""
    log = scoring.new["log"].assign(user_id=lambda f: "u" + f["user_id"].astype(str))
    users = scoring.new["users"].assign(user_id=lambda f: "u" + f["user_id"].astype(str))
    with pytest.raises(ScoreInputError, match=r"column 'user_id'.*string values.*'u\d+'.*integer ids"):
        score_rows(
            {**scoring.new, "log": log, "users": users},
            PASSED,
            in_memory(scoring.history),
            scoring.spec,
            scoring.trained,
            SCHEMA,
            scoring.training,
        )


def test_boolean_ids_are_refused_too(scoring):
    log = scoring.new["log"].assign(video_id=lambda f: f["video_id"] % 2 == 0)
    with pytest.raises(ScoreInputError, match=r"column 'video_id'.*boolean values"):
        scoring.score({**scoring.new, "log": log})


# ------------------------------------------------------------------------ 3. stale scoring history
def test_another_training_log_is_refused_naming_both_fingerprints(scoring):
    other = build_interactions(synthetic_bundle(SyntheticConfig(n_days=4, seed=99, **SYNTH)), SCHEMA)
    found = history_fingerprint(in_memory(other))
    assert found != scoring.spec.history
    with pytest.raises(StaleArtifactError) as info:
        scoring.score(scoring.new, history=other)
    message = str(info.value)
    assert found in message and scoring.spec.history in message, message
    assert "data/02_intermediate/interactions.parquet" in message and "data_validation" in message, message


def test_a_spec_without_a_history_stamp_is_refused_with_the_way_to_stamp_it(scoring):
    with pytest.raises(
        StaleArtifactError, match=r"records no training-log fingerprint.*--pipelines=feature_engineering"
    ):
        scoring.score(scoring.new, spec=replace(scoring.spec, history=None))


def test_the_history_fingerprint_ignores_row_order_but_not_content(scoring):
    history = scoring.history

    def fingerprint(frame: pd.DataFrame) -> str:
        return history_fingerprint(in_memory(frame))

    assert fingerprint(history.sample(frac=1.0, random_state=1)) == fingerprint(history)
    relabelled = history.assign(label=lambda f: f[LABEL_COLUMN].where(f.index != 5, 1 - f[LABEL_COLUMN]))
    assert fingerprint(relabelled) != fingerprint(history)
    assert fingerprint(history.iloc[:-1]) != fingerprint(history)


def test_the_stamp_survives_the_spec_file_and_leaves_the_spec_fingerprint_alone(scoring):
    """Models and tables record the spec fingerprint: stamping the history must not make them stale."""
    assert FeatureSpec.from_dict(scoring.spec.to_dict()).history == scoring.spec.history
    assert replace(scoring.spec, history=None).fingerprint == scoring.spec.fingerprint


def test_feature_engineering_stamps_the_spec_with_the_log_it_read(scoring):
    from ccss_pipeline.pipelines.feature_engineering.nodes import fit_features
    from ccss_pipeline.pipelines.feature_engineering.pipeline import create_pipeline

    train = add_log_features(scoring.history, SCHEMA.log_features)
    log = in_memory(scoring.history)
    spec = fit_features(in_memory(train), PASSED, SCHEMA, FeatureConfig(n_buckets=8), log)
    assert spec.history == history_fingerprint(log) and spec.fingerprint == scoring.spec.fingerprint
    fit = next(n for n in create_pipeline().nodes if n.name.endswith("fit_feature_spec"))
    assert fit.inputs[-1] == "interactions"


@pytest.mark.slow
def test_score_after_data_validation_on_another_table_is_refused_end_to_end(trained_project, tmp_path):
    """The probe's sequence on a trained project: data_validation rerun on another raw table, then score."""
    from tests.kedro_project import run_pipelines

    root = tmp_path / "project"
    shutil.copytree(trained_project, root)
    spec = json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text())
    assert spec.get("history"), "the trained project's spec records its training log"
    synthetic = {"type": "ccss_pipeline.datasets.SyntheticSourceDataset", "n_users": 300, "n_videos": 300}
    catalog = {  # another raw table (seed 77), and a small table to score
        "raw_source": {"type": "CachedDataset", "dataset": {**synthetic, "n_days": 8, "seed": 77}},
        "score_source": {"type": "CachedDataset", "dataset": {**synthetic, "n_days": 1, "seed": 78}},
    }
    (root / "conf" / "local" / "catalog.yml").write_text(json.dumps(catalog))  # JSON is YAML
    run_pipelines(root, pipeline_names=["data_validation"])
    with pytest.raises(Exception, match=r"training log .* fitted beside training log " + spec["history"]):
        run_pipelines(root, pipeline_names=["score"])
    assert not (root / "data" / "07_model_output" / "scores.parquet").exists()


# =============================================================================== 4, 5. score_onnx.py
SCRIPT = REPO / "serving" / "score_onnx.py"


def _model(spec: FeatureSpec, backbone: str = "dnn") -> CTRModel:
    torch.manual_seed(0)
    return CTRModel(spec, BackboneConfig(name=backbone, embedding_dim=4, hidden_units=[8])).eval()


def _table(spec: FeatureSpec, n: int = 200) -> pd.DataFrame:
    inputs = make_inputs(spec, n, seed=4)
    columns = {LABEL_COLUMN: inputs.label.astype(np.int8), GROUP_COLUMN: inputs.group}
    columns |= {c.column: inputs.cat[:, j] for j, c in enumerate(spec.categorical)}
    for k, f in enumerate(spec.numerical):
        columns[f.dense_column], columns[f.bucket_column] = inputs.dense[:, k], inputs.bucket[:, k]
    frame = pd.DataFrame(columns)
    frame.attrs["spec_fingerprint"] = spec.fingerprint
    return frame


def _score(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("onnx")
    spec = make_spec()
    export_onnx(_model(spec), spec, folder / "dnn.onnx", variant="ccss")
    _table(spec).to_parquet(folder / "table.parquet")
    return folder


@pytest.mark.parametrize("value", ["-5", "0", "many"])
def test_a_batch_size_below_one_is_refused_by_argparse(exported, tmp_path, value):
    out = tmp_path / "scores.parquet"
    proc = _score(exported / "dnn.onnx", exported / "table.parquet", "--out", out, "--batch-size", value)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "argument --batch-size: must be an integer >= 1" in proc.stderr and repr(value) in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("cast", "said"),
    [
        (lambda c: c.astype(bool), "holds bool values, not numbers"),
        (lambda c: c.astype("float64") + 0.5, "fractional or non-finite ids"),
        (lambda c: c.astype(str), "string values, not numbers"),
    ],
    ids=["bool", "fractional", "string"],
)
def test_ids_that_are_not_integers_are_refused(exported, tmp_path, cast, said):
    frame = _table(make_spec())
    frame["cat__user"] = cast(frame["cat__user"])
    frame.to_parquet(tmp_path / "bad.parquet")
    proc = _score(exported / "dnn.onnx", tmp_path / "bad.parquet", "--out", tmp_path / "s.parquet")
    assert proc.returncode == 1 and "'cat__user'" in proc.stderr and said in proc.stderr, proc.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_integral_float_ids_still_score_like_the_integers(exported, tmp_path):
    frame = _table(make_spec())
    frame.astype({"cat__user": "float64"}).to_parquet(tmp_path / "floats.parquet")
    for table, out in ((exported / "table.parquet", "a.parquet"), (tmp_path / "floats.parquet", "b.parquet")):
        assert _score(exported / "dnn.onnx", table, "--out", tmp_path / out).returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet"))


def test_out_naming_the_input_is_refused_and_the_input_kept(exported, tmp_path):
    table = tmp_path / "table.parquet"
    shutil.copy(exported / "table.parquet", table)
    before = table.read_bytes()
    for out in (table, tmp_path / "." / "table.parquet"):
        proc = _score(exported / "dnn.onnx", table, "--out", out)
        assert proc.returncode == 1 and "would be written over" in proc.stderr, proc.stderr
    assert table.read_bytes() == before


def test_a_json_of_another_export_is_refused(exported, tmp_path):
    """The .onnx carries its spec fingerprint and description: a .json of another spec's export, or of
    another backbone's export of the same spec, beside it is refused naming both."""
    other_spec = make_spec()
    other_spec = replace(other_spec, numerical=other_spec.numerical[:3])
    cases = {"other-spec": (other_spec, "dnn"), "other-backbone": (make_spec(), "deepfm")}
    for name, (spec, backbone) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        export_onnx(_model(spec, backbone), spec, folder / f"{backbone}.onnx", variant="ccss")
        mixed = folder / "mixed.onnx"
        shutil.copy(exported / "dnn.onnx", mixed)
        shutil.copy(folder / f"{backbone}.json", folder / "mixed.json")
        proc = _score(mixed, exported / "table.parquet", "--out", folder / "s.parquet")
        assert proc.returncode == 1 and "come from different exports" in proc.stderr, (name, proc.stderr)
        assert make_spec().fingerprint in proc.stderr and spec.fingerprint in proc.stderr, proc.stderr
        assert not (folder / "s.parquet").exists()


# ========================================================================== 6. database URLs in logs
SECRET_URL = "postgresql+psycopg://optuna:pa@SECRETTAIL@127.0.0.1:{port}/optuna"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SECRET_URL.format(port=5432), "postgresql+psycopg://optuna:***@127.0.0.1:5432/optuna"),
        ("postgresql://optuna:p:a:ss@db.example/optuna", "postgresql://optuna:***@db.example/optuna"),
        ("postgresql+psycopg://optuna@db.example/optuna", "postgresql+psycopg://optuna@db.example/optuna"),
        ("postgresql+psycopg://optuna:pa@SECRET:TAIL@127.0.0.1/optuna", "<unparseable URL>"),
        ("optuna:SECRETTAIL", "<unparseable URL>"),
    ],
    ids=["at-in-password", "colons-in-password", "no-password", "unparseable", "not-a-url"],
)
def test_the_whole_password_is_masked_whatever_it_holds(url, shown):
    assert safe_url(url) == shown
    assert "SECRET" not in safe_url(url) and "TAIL" not in safe_url(url)


def test_the_driver_error_of_a_mis_split_password_is_redacted(tmp_path):
    """SQLAlchemy ends the password at the first ``@``: the rest reached the driver as the host name,
    which the connection error repeated."""
    pytest.importorskip("psycopg")
    with pytest.raises(SearchStorageError) as info:
        open_storage(tmp_path, tiny_training().search, SECRET_URL.format(port=1))
    message = str(info.value)
    assert "SECRETTAIL" not in message and "pa@" not in message, message
    assert "optuna:***@127.0.0.1:1/optuna" in message, message


def test_the_storage_dataset_describes_the_url_masked():
    from ccss_pipeline.datasets import StudyStorageDataset

    dataset = StudyStorageDataset(credentials={"url": SECRET_URL.format(port=5432)})
    described = dataset._describe()["url"]  # what the dataset itself shows (Kedro's repr redacts on its own)
    assert described == "postgresql+psycopg://optuna:***@127.0.0.1:5432/optuna" and "SECRETTAIL" not in repr(dataset)
