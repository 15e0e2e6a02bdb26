"""ONNX export for serving: parity with torch per backbone, the encoding description, the Kedro-free
reference scorer (``serving/score_onnx.py``), the folder dataset and the ``export`` pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig, TrainingConfig
from ccss_pipeline.lineage import StaleArtifactError, stamp
from ccss_pipeline.model.backbones import BACKBONES, CTRModel
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.persistence import TrainedModel
from ccss_pipeline.model.scoring import predict_logits, predict_proba
from ccss_pipeline.model.trainer import train_model
from ccss_pipeline.serving import INPUT_NAMES, OUTPUT_NAMES, encoding_description, export_onnx, onnx_inputs
from ccss_pipeline.serving.onnx_export import METADATA_KEY, OPSET
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, FeatureSpec, ModelInputs
from tests.model.conftest import make_inputs, make_spec

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "serving" / "score_onnx.py"
PARITY_ROWS = 10_000
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def _model(spec: FeatureSpec, backbone: str, seed: int = 0) -> CTRModel:
    torch.manual_seed(seed)
    # a wider embedding init than training's default, so random models' outputs spread over rows
    cfg = BackboneConfig(name=backbone, embedding_dim=8, hidden_units=[32, 16], cross_layers=2, embedding_init_std=0.3)
    return CTRModel(spec, cfg).eval()


def _frame(spec: FeatureSpec, inputs: ModelInputs) -> pd.DataFrame:
    """A model-ready table (the columns of spec.py's contract) holding ``inputs``, stamped for ``spec``."""
    columns = {LABEL_COLUMN: inputs.label.astype(np.int8), GROUP_COLUMN: inputs.group}
    columns |= {c.column: inputs.cat[:, j] for j, c in enumerate(spec.categorical)}
    for k, f in enumerate(spec.numerical):
        columns[f.dense_column] = inputs.dense[:, k]
        columns[f.bucket_column] = inputs.bucket[:, k]
    return stamp(pd.DataFrame(columns), spec)


def _onnx_scores(data: bytes | str | Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    source = str(data) if isinstance(data, Path) else data
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    prob, logit = session.run(list(OUTPUT_NAMES), arrays)
    return prob, logit


def _parity(model: CTRModel, spec: FeatureSpec, inputs: ModelInputs, path: Path) -> tuple[float, float]:
    """Export to ``path``; max |p_onnx − p_torch| and max |z_onnx − z_torch| on every row of ``inputs``."""
    description = export_onnx(model, spec, path, variant="ccss", model_name=path.stem)
    prob, logit = _onnx_scores(path, onnx_inputs(_frame(spec, inputs), description))
    assert prob.dtype == np.float32 and prob.shape == (len(inputs),)
    p_torch, z_torch = predict_proba(model, inputs), predict_logits(model, inputs)
    assert np.std(p_torch) > 1e-3, "the model's scores hardly vary: parity would prove little"
    return float(np.abs(prob - p_torch).max()), float(np.abs(logit - z_torch).max())


# =====================================================================================================
# Parity with torch
# =====================================================================================================


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_random_model_parity_on_10k_rows(backbone, tmp_path):
    spec = make_spec()
    inputs = make_inputs(spec, PARITY_ROWS, seed=3)
    diff_p, diff_z = _parity(_model(spec, backbone), spec, inputs, tmp_path / f"{backbone}.onnx")
    print(f"{backbone} random init: max |dp| = {diff_p:.3g}, max |dlogit| = {diff_z:.3g}")
    assert diff_p <= TOLERANCE
    assert diff_z <= 1e-4


def test_trained_model_parity_on_10k_rows(tmp_path):
    spec = make_spec()
    train, valid = make_inputs(spec, 6000, seed=1), make_inputs(spec, 2000, seed=2)
    result = train_model(
        spec,
        train,
        valid,
        BackboneConfig(name="deepfm", embedding_dim=8, hidden_units=[32, 16]),
        ContrastiveConfig(weight=0.0),
        OptimizerConfig(batch_size=256, max_epochs=3, patience=3, device="cpu", seed=0),
    )
    assert result.best_val_auc > 0.6  # it learned something
    inputs = make_inputs(spec, PARITY_ROWS, seed=4)
    diff_p, diff_z = _parity(result.model, spec, inputs, tmp_path / "deepfm.onnx")
    print(f"deepfm trained: max |dp| = {diff_p:.3g}, max |dlogit| = {diff_z:.3g}")
    assert diff_p <= TOLERANCE
    assert diff_z <= 1e-4


def test_no_categorical_features_and_a_single_row(tmp_path):
    """Zero categorical columns give a (N, 0) ``cat`` input; batches of one row work (dynamic batch)."""
    from dataclasses import replace

    spec = replace(make_spec(), categorical=[])
    inputs = make_inputs(make_spec(), 50, seed=5)
    inputs = ModelInputs(np.zeros((50, 0), np.int64), inputs.dense, inputs.bucket, inputs.label, inputs.group)
    model = _model(spec, "dcn_v2")
    path = tmp_path / "dcn_v2.onnx"
    description = export_onnx(model, spec, path)
    arrays = onnx_inputs(_frame(spec, inputs), description)
    assert arrays["cat"].shape == (50, 0)
    prob, _ = _onnx_scores(path, arrays)
    one, _ = _onnx_scores(path, {k: v[:1] for k, v in arrays.items()})
    assert np.abs(prob - predict_proba(model, inputs)).max() <= TOLERANCE
    assert one.shape == (1,) and abs(float(one[0]) - float(prob[0])) <= 1e-6


# =====================================================================================================
# The encoding description and the graph
# =====================================================================================================


def test_description_names_inputs_columns_dtypes_and_the_spec(tmp_path):
    spec = make_spec()
    model = _model(spec, "wide_deep")
    path = tmp_path / "wide_deep.onnx"
    returned = export_onnx(model, spec, path, variant="ccss", model_name="wide_deep__ccss__seed42", extra={"seed": 42})
    written = json.loads(path.with_suffix(".json").read_text())
    assert written == returned
    assert written["spec_fingerprint"] == spec.fingerprint
    assert (written["backbone"], written["variant"], written["model"]) == (
        "wide_deep",
        "ccss",
        "wide_deep__ccss__seed42",
    )
    assert written["training"] == {"seed": 42}
    assert written["opset"] >= 17
    cat, dense, bucket = written["inputs"]
    m, k = len(spec.categorical), len(spec.numerical)
    assert [i["name"] for i in written["inputs"]] == list(INPUT_NAMES)
    assert (cat["dtype"], cat["shape"], cat["columns"]) == ("int64", ["batch", m], ["cat__user", "cat__item"])
    assert cat["cardinalities"] == [30, 20]
    assert (dense["dtype"], dense["shape"]) == ("float32", ["batch", k])
    assert (
        dense["columns"]
        == [f"num__{f.name}" for f in spec.numerical]
        == ["num__pos", "num__neg", "num__free", "num__flat"]
    )
    assert (bucket["dtype"], bucket["shape"]) == ("int64", ["batch", k])
    assert bucket["columns"] == [f"bkt__{f.name}" for f in spec.numerical]
    assert bucket["cardinalities"] == [f.n_buckets + 1 for f in spec.numerical]
    assert bucket["missing_bucket"] == [f.n_buckets for f in spec.numerical]
    assert [(o["name"], o["dtype"], o["shape"]) for o in written["outputs"]] == [
        ("probability", "float32", ["batch"]),
        ("logit", "float32", ["batch"]),
    ]
    assert written["check"]["max_abs_diff_probability"] <= TOLERANCE

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == OPSET
    elem = {"cat": onnx.TensorProto.INT64, "dense": onnx.TensorProto.FLOAT, "bucket": onnx.TensorProto.INT64}
    for graph_input in proto.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        assert graph_input.type.tensor_type.elem_type == elem[graph_input.name]
        assert dims[0].dim_param == "batch" and dims[1].dim_value == {"cat": m}.get(graph_input.name, k)
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in proto.graph.output)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["spec_fingerprint"] == spec.fingerprint
    embedded = json.loads(meta[METADATA_KEY])
    assert embedded == {k: v for k, v in written.items() if k != "check"}
    assert encoding_description(spec, "wide_deep", "ccss", "wide_deep__ccss__seed42", extra={"seed": 42}) == embedded


def test_export_to_a_buffer_leaves_the_model_as_it_was():
    import io

    spec = make_spec()
    model = _model(spec, "dnn").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    description = export_onnx(model, spec, buffer)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert description["backbone"] == "dnn" and buffer.getvalue()[:2] != b""
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))


def test_onnx_inputs_refuses_missing_columns_bad_ids_and_nan():
    spec = make_spec()
    description = encoding_description(spec, "dnn")
    frame = _frame(spec, make_inputs(spec, 20, seed=0))
    arrays = onnx_inputs(frame, description)
    assert {k: (v.dtype.name, v.shape) for k, v in arrays.items()} == {
        "cat": ("int64", (20, 2)),
        "dense": ("float32", (20, 4)),
        "bucket": ("int64", (20, 4)),
    }
    with pytest.raises(KeyError, match="bkt__neg"):
        onnx_inputs(frame.drop(columns=["bkt__neg"]), description)
    with pytest.raises(ValueError, match="cat__item.*0 .. 19"):
        onnx_inputs(frame.assign(cat__item=20), description)
    with pytest.raises(ValueError, match="bkt__pos"):
        onnx_inputs(frame.assign(bkt__pos=-1), description)
    with pytest.raises(ValueError, match="num__free.*non-finite"):
        onnx_inputs(frame.assign(num__free=np.nan), description)


# =====================================================================================================
# serving/score_onnx.py: onnxruntime alone
# =====================================================================================================

#: Runs the script with torch, Kedro and the project package made unimportable.
_WITHOUT_TORCH = (
    "import runpy, sys\n"
    "for name in ('torch', 'kedro', 'kedro_datasets', 'ccss_pipeline'):\n"
    "    sys.modules[name] = None\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _score(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_score_onnx_script_matches_torch(tmp_path):
    spec = make_spec()
    model = _model(spec, "dcn_v2")
    export_onnx(model, spec, tmp_path / "dcn_v2.onnx", variant="ccss")
    inputs = make_inputs(spec, 3000, seed=6)
    table = tmp_path / "test.parquet"
    _frame(spec, inputs).to_parquet(table)
    out = tmp_path / "scores.parquet"
    proc = _score(tmp_path / "dcn_v2.onnx", table, "--out", out, "--batch-size", "1000", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert "scored 3,000 rows" in proc.stdout
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["row", "probability"]
    assert scores["probability"].dtype == np.float32 and scores["row"].tolist() == list(range(3000))
    assert np.abs(scores["probability"].to_numpy() - predict_proba(model, inputs)).max() <= TOLERANCE


def test_a_recalibrated_model_exports_its_recalibration_in_the_graph(tmp_path):
    """The graph applies the model's recalibration (σ(a·z + b) here): the ONNX probability and logit are
    the recalibrated ones torch serves, not the raw network's; the description and score_onnx say which."""
    spec = make_spec()
    raw = _model(spec, "deepfm")
    recalibration = Recalibration("platt", 0.45, -0.7)
    served = CTRModel(spec, raw.cfg, recalibration).eval()
    served.load_state_dict(raw.state_dict())
    inputs = make_inputs(spec, 3000, seed=9)
    path = tmp_path / "deepfm.onnx"
    description = export_onnx(served, spec, path, variant="ccss")
    assert description["recalibration"] == recalibration.to_dict() and description["format_version"] == 2
    prob, logit = _onnx_scores(path, onnx_inputs(_frame(spec, inputs), description))
    assert prob.dtype == np.float32 and logit.dtype == np.float32
    assert np.abs(prob - predict_proba(served, inputs)).max() <= TOLERANCE
    assert np.abs(logit - recalibration.apply(predict_logits(raw, inputs))).max() <= 1e-4
    assert np.abs(prob - predict_proba(raw, inputs)).max() > 0.05  # the map is really in the graph
    table, out = tmp_path / "test.parquet", tmp_path / "scores.parquet"
    _frame(spec, inputs).to_parquet(table)
    proc = _score(path, table, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert '"kind": "platt"' in proc.stdout  # it says which recalibration the graph applies
    assert np.abs(pd.read_parquet(out)["probability"].to_numpy() - predict_proba(served, inputs)).max() <= TOLERANCE
    metadata = pq.read_schema(out).metadata
    assert json.loads(metadata[b"ccss_recalibration"]) == recalibration.to_dict()


def test_score_onnx_script_refuses_a_table_of_another_spec_and_bad_ids(tmp_path):
    spec = make_spec()
    export_onnx(_model(spec, "dnn"), spec, tmp_path / "dnn.onnx")
    frame = _frame(spec, make_inputs(spec, 100, seed=7))
    stale = frame.copy()
    stale.attrs["spec_fingerprint"] = "0123456789abcdef"
    stale.to_parquet(tmp_path / "stale.parquet")
    proc = _score(tmp_path / "dnn.onnx", tmp_path / "stale.parquet", "--out", tmp_path / "a.parquet")
    assert proc.returncode != 0 and "0123456789abcdef" in proc.stderr
    frame.assign(bkt__neg=99).to_parquet(tmp_path / "bad.parquet")
    proc = _score(tmp_path / "dnn.onnx", tmp_path / "bad.parquet", "--out", tmp_path / "b.parquet")
    assert proc.returncode != 0 and "bkt__neg" in proc.stderr
    frame.drop(columns=["num__pos"]).to_parquet(tmp_path / "short.parquet")
    proc = _score(tmp_path / "dnn.onnx", tmp_path / "short.parquet", "--out", tmp_path / "c.parquet")
    assert proc.returncode != 0 and "num__pos" in proc.stderr
    assert not any((tmp_path / n).exists() for n in ("a.parquet", "b.parquet", "c.parquet"))


def test_score_onnx_script_is_short_and_imports_only_numpy_pyarrow_onnxruntime():
    import ast

    source = SCRIPT.read_text()
    assert len(source.splitlines()) <= 120  # 110 before issue 28 added the argument and export checks
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "argparse", "json", "sys", "pathlib", "numpy", "onnxruntime", "pyarrow", "pandas"}


# =====================================================================================================
# The folder dataset, the node and the Kedro pipeline
# =====================================================================================================


def test_onnx_folder_dataset_round_trip_is_atomic(tmp_path):
    from kedro.io import DatasetError

    from ccss_pipeline.datasets.onnx import OnnxFolderDataset

    folder = tmp_path / "data" / "06_models" / "onnx"
    dataset = OnnxFolderDataset(str(folder))
    with pytest.raises(DatasetError, match="pipelines=export"):
        dataset.load()
    data = {
        "dnn": {"onnx": b"\x08\x07", "encoding": {"backbone": "dnn"}},
        "dcn_v2": {"onnx": b"\x08\x08", "encoding": {"backbone": "dcn_v2"}},
    }
    dataset.save(data)
    assert sorted(p.name for p in folder.iterdir()) == ["dcn_v2.json", "dcn_v2.onnx", "dnn.json", "dnn.onnx"]
    assert dataset.load() == data
    dataset.save({"dnn": data["dnn"]})  # the folder is replaced as a whole: no stale dcn_v2 files
    assert dataset.load() == {"dnn": data["dnn"]}
    assert sorted(p.name for p in folder.parent.iterdir()) == ["onnx"]  # no temporaries left
    with pytest.raises(DatasetError, match="file name"):
        dataset.save({"../x": data["dnn"]})
    (folder / "dnn.json").unlink()
    with pytest.raises(DatasetError, match="dnn.json"):
        dataset.load()


def _collection(spec: FeatureSpec, backbones: list[str], seeds: list[int]) -> dict[str, dict]:
    """Untrained models named and configured as model_training writes them."""
    models = {}
    for backbone in backbones:
        for seed in seeds:
            for variant in ("baseline", "ccss"):
                model = _model(spec, backbone, seed)
                record = TrainedModel.of(model, spec, variant, seed, best_val_auc=0.7)
                models[record.name] = record
    return models


def test_export_node_exports_the_first_seed_ccss_model_of_each_backbone():
    from ccss_pipeline.pipelines.export.nodes import export_onnx_models

    spec = make_spec()
    models = _collection(spec, ["dnn", "deepfm"], [42, 43])
    training = TrainingConfig(backbones=["deepfm", "dnn"], optimizer=OptimizerConfig(seed=42))
    exported = export_onnx_models(models, spec, training)
    assert sorted(exported) == ["deepfm", "dnn"]
    inputs = make_inputs(spec, 500, seed=8)
    for backbone, entry in exported.items():
        encoding = entry["encoding"]
        assert (encoding["model"], encoding["variant"], encoding["backbone"]) == (
            f"{backbone}__ccss__seed42",
            "ccss",
            backbone,
        )
        assert encoding["training"] == {"seed": 42, "best_val_auc": 0.7}
        chosen = CTRModel(spec, models[f"{backbone}__ccss__seed42"].backbone)
        chosen.load_state_dict(dict(models[f"{backbone}__ccss__seed42"].state_dict))
        prob, _ = _onnx_scores(entry["onnx"], onnx_inputs(_frame(spec, inputs), encoding))
        assert np.abs(prob - predict_proba(chosen.eval(), inputs)).max() <= TOLERANCE

    with pytest.raises(StaleArtifactError, match="dcn_v2__ccss__seed42"):
        export_onnx_models(models, spec, TrainingConfig(backbones=["dcn_v2"]))
    with pytest.raises(StaleArtifactError, match="dnn__ccss__seed44.*dnn__ccss__seed42"):
        export_onnx_models(models, spec, TrainingConfig(backbones=["dnn"], optimizer=OptimizerConfig(seed=44)))
    stale = {k: replace(v, spec_fingerprint="0000000000000000") for k, v in models.items()}
    with pytest.raises(StaleArtifactError, match="another feature spec"):
        export_onnx_models(stale, spec, training)


def test_export_is_registered_but_not_in_the_default_run():
    from ccss_pipeline.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    assert [n.name for n in pipelines["export"].nodes] == ["export.export_onnx_models"]
    assert pipelines["export"].outputs() == {"onnx_models"}
    assert "export.export_onnx_models" not in {n.name for n in pipelines["__default__"].nodes}


@pytest.mark.slow
def test_export_pipeline_on_a_trained_project(trained_project, tmp_path):
    """``kedro run --pipelines=export`` on (a copy of) the shared trained project."""
    from tests.support.trained_project import kedro_cli

    root = tmp_path / "project"
    shutil.copytree(trained_project, root)
    shutil.copytree(REPO / "conf" / "base", root / "conf" / "base", dirs_exist_ok=True)  # this catalog
    kedro_cli(root, "--pipelines=export")
    folder = root / "data" / "06_models" / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["dnn.json", "dnn.onnx"]
    encoding = json.loads((folder / "dnn.json").read_text())
    spec = FeatureSpec.from_dict(json.loads((root / "data" / "04_feature" / "feature_spec.json").read_text()))
    assert encoding["model"] == "dnn__ccss__seed42" and encoding["spec_fingerprint"] == spec.fingerprint
    assert encoding["recalibration"]["kind"] == "temperature"  # the project's default, inside the graph

    from ccss_pipeline.datasets import ModelCollectionDataset

    entry = ModelCollectionDataset(str(root / "data" / "06_models" / "trained")).load()["dnn__ccss__seed42"]
    model = entry.rebuild(spec)
    test = pd.read_parquet(root / "data" / "05_model_input" / "test.parquet")
    out = tmp_path / "scores.parquet"
    proc = _score(folder / "dnn.onnx", root / "data" / "05_model_input" / "test.parquet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    p_torch = predict_proba(model.eval(), ModelInputs.from_frame(test, spec))
    assert np.abs(pd.read_parquet(out)["probability"].to_numpy() - p_torch).max() <= TOLERANCE
