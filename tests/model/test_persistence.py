"""Trained models through the catalog's format and back (ModelCollectionDataset + TrainedModel.rebuild)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.datasets import ModelCollectionDataset
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.persistence import (
    TrainedModel,
    chosen_models,
    first_seed_models,
    model_key,
    parse_model_key,
)
from ccss_pipeline.model.scoring import predict_proba
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
    with pytest.raises(StaleArtifactError, match=r"no 'dnn__ccss__seed44'.*dnn__baseline__seed42"):
        chosen_models(spec, models, ["dnn"], 44)
