import json

import numpy as np
import pytest

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.persistence import load_model, save_model
from ccss_pipeline.model.trainer import predict_proba
from ccss_pipeline.spec import FeatureSpec


@pytest.mark.parametrize("name", ["dnn", "dcn_v2"])
def test_round_trip_identical_predictions(spec, inputs, tmp_path, name):
    model = CTRModel(spec, BackboneConfig(name=name, hidden_units=[8]))
    save_model(model, {"run": "x"}, tmp_path, spec=spec)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["backbone"]["name"] == name and meta["run"] == "x"
    loaded = load_model(tmp_path, spec)
    np.testing.assert_array_equal(predict_proba(model, inputs), predict_proba(loaded, inputs))


def test_wrong_spec_rejected(spec, tmp_path):
    save_model(CTRModel(spec, BackboneConfig(hidden_units=[8])), {}, tmp_path, spec=spec)
    other = FeatureSpec(categorical=spec.categorical, numerical=spec.numerical[:3])
    with pytest.raises(ValueError, match="different feature spec"):
        load_model(tmp_path, other)
