"""Trained models through the catalog's format and back (ModelCollectionDataset + TrainedModel.rebuild)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.datasets import ModelCollectionDataset
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.persistence import (
    TrainedModel,
    chosen_models,
    first_seed_models,
    model_key,
    parse_model_key,
)
from ccss_pipeline.model.scoring import predict_logits, predict_proba
from ccss_pipeline.spec import FeatureSpec


def _record(model: CTRModel, spec: FeatureSpec, name: str = "m", seed: int = 0, variant: str = "ccss"):
    return replace(TrainedModel.of(model, spec, variant, seed), name=name)


@pytest.mark.parametrize("name", ["dnn", "dcn_v2"])
def test_round_trip_identical_predictions(spec, inputs, tmp_path, name):
    model = CTRModel(spec, BackboneConfig(name=name, hidden_units=[8])).eval()
    ModelCollectionDataset(str(tmp_path / "trained")).save({"m": _record(model, spec)})
    meta = json.loads((tmp_path / "trained" / "m" / "model.json").read_text())
    assert meta["backbone"]["name"] == name and meta["spec_hash"] == spec.fingerprint
    loaded = ModelCollectionDataset(str(tmp_path / "trained")).load()
    rebuilt = loaded["m"].rebuild(spec)
    assert not rebuilt.training
    np.testing.assert_array_equal(predict_proba(model, inputs), predict_proba(rebuilt, inputs))


def test_wrong_spec_rejected(spec):
    record = _record(CTRModel(spec, BackboneConfig(hidden_units=[8])), spec)
    other = FeatureSpec(categorical=spec.categorical, numerical=spec.numerical[:3])
    with pytest.raises(StaleArtifactError, match=r"trained_models\['m'\].*another feature spec"):
        record.rebuild(other)


def test_model_key_round_trips():
    assert parse_model_key(model_key("dcn_v2", "baseline", 43)) == ("dcn_v2", "baseline", 43)
    assert parse_model_key("not a key") is None


def test_first_seed_and_chosen_models(spec):
    net = CTRModel(spec, BackboneConfig(hidden_units=[8]))
    models = {
        model_key("dnn", v, s): _record(net, spec, model_key("dnn", v, s), s, v)
        for v in ("baseline", "ccss")
        for s in (43, 42)
    }
    assert first_seed_models(models) == {
        ("dnn", "baseline"): "dnn__baseline__seed42",
        ("dnn", "ccss"): "dnn__ccss__seed42",
    }
    chosen = chosen_models(spec, models, ["dnn"], 42)
    assert list(chosen) == ["dnn"] and chosen["dnn"][0] == "dnn__ccss__seed42"
    # the model served per backbone (score, export) carries its recalibration
    scaled = {k: replace(v, recalibration=Recalibration("temperature", 0.5)) for k, v in models.items()}
    assert chosen_models(spec, scaled, ["dnn"], 42)["dnn"][1].recalibration == Recalibration("temperature", 0.5)
    with pytest.raises(StaleArtifactError, match=r"no 'dnn__ccss__seed44'.*dnn__baseline__seed42"):
        chosen_models(spec, models, ["dnn"], 44)


def test_recalibration_is_stored_with_the_model_and_served_by_the_rebuilt_module(spec, inputs, tmp_path):
    model = CTRModel(spec, BackboneConfig(hidden_units=[8], embedding_init_std=0.3)).eval()
    recalibration = Recalibration("platt", 0.8123456789, -0.25)
    record = replace(_record(model, spec), recalibration=recalibration)
    ModelCollectionDataset(str(tmp_path / "trained")).save({"m": record})
    meta = json.loads((tmp_path / "trained" / "m" / "model.json").read_text())
    assert meta["recalibration"] == {
        "kind": "platt",
        "scale": 0.8123456789,
        "shift": -0.25,
        "temperature": 1 / 0.8123456789,
    }
    loaded = ModelCollectionDataset(str(tmp_path / "trained")).load()["m"]
    assert loaded.recalibration == recalibration
    z = predict_logits(model, inputs)
    np.testing.assert_allclose(predict_proba(loaded.rebuild(spec), inputs), recalibration.probability(z), atol=1e-12)
    np.testing.assert_array_equal(
        predict_proba(loaded.rebuild(spec, recalibrated=False), inputs), predict_proba(model, inputs)
    )


def test_a_model_json_written_before_recalibration_loads_as_none(spec, inputs, tmp_path):
    model = CTRModel(spec, BackboneConfig(hidden_units=[8])).eval()
    ModelCollectionDataset(str(tmp_path / "trained")).save({"m": _record(model, spec)})
    path = tmp_path / "trained" / "m" / "model.json"
    old = json.loads(path.read_text())
    del old["recalibration"]  # the file as it was written before recalibration existed
    path.write_text(json.dumps(old))
    loaded = ModelCollectionDataset(str(tmp_path / "trained")).load()["m"]
    assert loaded.recalibration == Recalibration() and loaded.rebuild(spec).recalibration.kind == "none"
    np.testing.assert_array_equal(predict_proba(loaded.rebuild(spec), inputs), predict_proba(model, inputs))
    assert "recalibration" in loaded.config()  # saved again, it says so
