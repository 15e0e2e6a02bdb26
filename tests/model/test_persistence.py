"""Trained models through the catalog's format and back (ModelCollectionDataset + rebuild_model)."""

import json

import numpy as np
import pytest

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.datasets import ModelCollectionDataset
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.persistence import rebuild_model, spec_hash
from ccss_pipeline.model.scoring import predict_proba
from ccss_pipeline.spec import FeatureSpec


def _entry(model: CTRModel, spec: FeatureSpec) -> dict:
    return {
        "config": {"backbone": model.cfg.model_dump(), "spec_hash": spec_hash(spec), "run": "x"},
        "state_dict": model.state_dict(),
    }


@pytest.mark.parametrize("name", ["dnn", "dcn_v2"])
def test_round_trip_identical_predictions(spec, inputs, tmp_path, name):
    model = CTRModel(spec, BackboneConfig(name=name, hidden_units=[8])).eval()
    ModelCollectionDataset(str(tmp_path / "trained")).save({"m": _entry(model, spec)})
    meta = json.loads((tmp_path / "trained" / "m" / "model.json").read_text())
    assert meta["backbone"]["name"] == name and meta["run"] == "x"
    loaded = ModelCollectionDataset(str(tmp_path / "trained")).load()
    rebuilt = rebuild_model(spec, "m", loaded["m"])
    np.testing.assert_array_equal(predict_proba(model, inputs), predict_proba(rebuilt, inputs))


def test_wrong_spec_rejected(spec, tmp_path):
    entry = _entry(CTRModel(spec, BackboneConfig(hidden_units=[8])), spec)
    other = FeatureSpec(categorical=spec.categorical, numerical=spec.numerical[:3])
    with pytest.raises(StaleArtifactError, match=r"trained_models\['m'\].*another feature spec"):
        rebuild_model(other, "m", entry)
