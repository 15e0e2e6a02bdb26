"""Monotone recalibration: the fit, the order it keeps, its JSON record, and the module that
carries it (every probability of a recalibrated model goes through it; the raw grid keeps its verdict)."""

from __future__ import annotations

import json
import math
from typing import get_args

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ccss_pipeline.config import BackboneConfig, TrainingConfig
from ccss_pipeline.evaluation.raw_grid import raw_grid_report
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.calibration import KINDS, LOG_SCALE_BOUNDS, Recalibration
from ccss_pipeline.model.scoring import predict_logits, predict_proba, score_fn
from ccss_pipeline.model.trainer import fit_recalibration
from tests.model.conftest import make_inputs, make_spec


def _synthetic(n: int, scale: float, shift: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels drawn from σ(scale · z + shift): the map that calibrates z is known."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(scale * z + shift)))).astype(np.float64)
    return z, y


# ------------------------------------------------------------------------------------------------ fit


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_fit_recovers_a_known_temperature(temperature):
    z, y = _synthetic(200_000, 1.0 / temperature, seed=1)
    fitted = Recalibration.fit(z, y, "temperature")
    assert fitted.kind == "temperature" and fitted.shift == 0.0
    assert fitted.temperature == pytest.approx(temperature, rel=0.03)
    assert fitted.log_loss(z, y) <= Recalibration().log_loss(z, y) + 1e-12


def test_platt_recovers_a_known_scale_and_shift():
    z, y = _synthetic(200_000, 0.6, shift=-1.2, seed=2)
    fitted = Recalibration.fit(z, y, "platt")
    assert fitted.scale == pytest.approx(0.6, rel=0.03) and fitted.shift == pytest.approx(-1.2, abs=0.03)
    # a shift temperature scaling cannot express: Platt does clearly better than it
    assert fitted.log_loss(z, y) < Recalibration.fit(z, y, "temperature").log_loss(z, y) - 0.01


@pytest.mark.parametrize("kind", ["temperature", "platt"])
def test_the_fit_never_does_worse_than_the_identity_on_its_split(kind):
    """Started at the identity, minimising the same LogLoss: on an already calibrated split it stays
    near the identity and is never worse."""
    z, y = _synthetic(20_000, 1.0, seed=3)
    fitted = Recalibration.fit(z, y, kind)
    assert fitted.log_loss(z, y) <= Recalibration().log_loss(z, y) + 1e-12
    assert fitted.scale == pytest.approx(1.0, abs=0.1) and abs(fitted.shift) < 0.1


@pytest.mark.parametrize("kind", ["temperature", "platt"])
@pytest.mark.parametrize("seed", range(4))
def test_scale_is_positive_even_when_the_logits_rank_backwards(kind, seed):
    """Labels that fall as the logit rises would want a < 0; the fit optimises log a, so a stays > 0
    (at its lower bound) and the map never reverses an order."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, 5_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(2.0 * z))).astype(float)  # anti-correlated
    fitted = Recalibration.fit(z, y, kind)
    assert fitted.scale > 0 and math.log(fitted.scale) >= LOG_SCALE_BOUNDS[0] - 1e-9
    assert np.all(np.diff(fitted.apply(np.sort(z))) > 0)


def test_none_is_the_identity_and_the_constructor_refuses_a_non_increasing_map():
    z, y = _synthetic(1_000, 1.0, seed=4)
    none = Recalibration.fit(z, y, "none")
    assert none == Recalibration() and none.is_identity
    np.testing.assert_array_equal(none.apply(z), z)
    for scale in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="scale must be finite and > 0"):
            Recalibration("platt", scale, 0.0)
    with pytest.raises(ValueError, match="temperature scaling has no shift"):
        Recalibration("temperature", 1.0, 0.5)
    with pytest.raises(ValueError, match="'none' is the identity"):
        Recalibration("none", 2.0, 0.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        Recalibration("isotonic")  # type: ignore[arg-type]


def test_the_fit_refuses_what_it_cannot_fit():
    z = np.linspace(-2, 2, 10)
    with pytest.raises(ValueError, match="both classes"):
        Recalibration.fit(z, np.ones(10), "temperature")
    with pytest.raises(ValueError, match="differ in length"):
        Recalibration.fit(z, np.ones(9), "platt")
    with pytest.raises(ValueError, match="non-finite"):
        Recalibration.fit(np.append(z[:-1], np.nan), np.r_[np.zeros(5), np.ones(5)], "platt")
    with pytest.raises(ValueError, match="0 or 1"):
        Recalibration.fit(z, np.full(10, 0.5), "platt")
    with pytest.raises(ValueError, match="kind must be one of"):
        Recalibration.fit(z, np.r_[np.zeros(5), np.ones(5)], "isotonic")


# ------------------------------------------------------------------------------------ what it keeps


@pytest.mark.parametrize(
    "recalibration",
    [Recalibration("temperature", 1 / 1.7), Recalibration("temperature", 3.0), Recalibration("platt", 0.4, -2.5)],
)
def test_auc_and_the_order_of_every_pair_are_unchanged(recalibration):
    rng = np.random.default_rng(5)
    z = rng.normal(0, 2, 2_000).astype(np.float32)  # float32 logits, as the network gives them
    z[:50] = z[50:100]  # ties must stay ties
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    after = recalibration.apply(z)
    assert not np.allclose(after, z)  # the map does move the logits ...
    # ... but keeps the sign of every one of the 4 million pairwise differences
    np.testing.assert_array_equal(np.sign(np.subtract.outer(after, after)), np.sign(np.subtract.outer(z, z)))
    p_before, p_after = 1 / (1 + np.exp(-z.astype(np.float64))), recalibration.probability(z)
    assert roc_auc_score(y, p_after) == roc_auc_score(y, p_before)


def test_a_recalibrated_module_serves_the_map_of_its_raw_logit():
    """The module is the one code path: scoring, evaluation, what-if and ONNX call ``served_logit``."""
    spec = make_spec()
    inputs = make_inputs(spec, 500, seed=6)
    torch.manual_seed(0)
    raw = CTRModel(spec, BackboneConfig(hidden_units=[16], embedding_init_std=0.3)).eval()
    recalibration = Recalibration("platt", 0.35, -0.8)
    served = CTRModel(spec, raw.cfg, recalibration).eval()
    served.load_state_dict(raw.state_dict())
    z = predict_logits(raw, inputs)
    np.testing.assert_allclose(predict_logits(served, inputs), recalibration.apply(z), rtol=0, atol=1e-12)
    np.testing.assert_allclose(predict_proba(served, inputs), recalibration.probability(z), rtol=0, atol=1e-12)
    # training sees the raw logit: forward is untouched by the recalibration
    with torch.no_grad():
        a, _ = raw(torch.as_tensor(inputs.cat), torch.as_tensor(inputs.dense), torch.as_tensor(inputs.bucket))
        b, _ = served(torch.as_tensor(inputs.cat), torch.as_tensor(inputs.dense), torch.as_tensor(inputs.bucket))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("recalibration", [Recalibration("temperature", 1 / 2.2), Recalibration("platt", 3.0, 1.5)])
def test_raw_grid_monotonicity_is_unchanged_by_the_recalibration(recalibration):
    """Every step of every raw-grid curve keeps its sign under a strictly increasing map of the logit, so
    the wrong-step counts (ε = 0) are identical — per feature, pooled, at the edges and per row."""
    spec = make_spec()
    test = make_inputs(spec, 400, seed=7)
    torch.manual_seed(1)
    raw = CTRModel(spec, BackboneConfig(hidden_units=[16], embedding_init_std=0.5)).eval()
    served = CTRModel(spec, raw.cfg, recalibration).eval()
    served.load_state_dict(raw.state_dict())
    reports = [
        raw_grid_report(score_fn(m, "cpu"), test, spec, levels=40, rows=150, seed=0, eps=0.0) for m in (raw, served)
    ]
    before, after = reports
    assert 0 < before.pooled["wrong_step_share"] < 1  # an untrained model: there is something to keep
    for key in ("wrong_step_share", "wrong_step_share_inside", "wrong_step_share_crossing", "edge_wrong_share",
                "monotone_row_share"):  # fmt: skip
        assert after.pooled[key] == before.pooled[key], key
    columns = [c for c in before.per_feature.columns if c.startswith(("wrong_step", "edge_wrong", "monotone_row"))]
    assert columns
    np.testing.assert_array_equal(after.per_feature[columns].to_numpy(), before.per_feature[columns].to_numpy())


# ----------------------------------------------------------------------------------- record and config


@pytest.mark.parametrize(
    "recalibration",
    [Recalibration(), Recalibration("temperature", 0.7310585786300049), Recalibration("platt", 1.1, -0.123456789)],
)
def test_json_round_trip_is_exact(recalibration):
    text = json.dumps(recalibration.to_dict())
    back = Recalibration.from_dict(json.loads(text))
    assert back == recalibration
    assert json.loads(text)["temperature"] == pytest.approx(1 / recalibration.scale)


def test_from_dict_reads_an_absent_record_as_none_and_refuses_strange_ones():
    assert Recalibration.from_dict(None) == Recalibration()
    with pytest.raises(ValueError, match="unknown recalibration keys"):
        Recalibration.from_dict({"kind": "platt", "scale": 1.0, "shift": 0.0, "slope": 2})
    with pytest.raises(ValueError, match="kind must be one of"):
        Recalibration.from_dict({"kind": "beta"})
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        Recalibration.from_dict({"kind": "platt", "scale": -0.5, "shift": 0.0})


def test_the_training_parameter_takes_exactly_the_kinds_the_library_fits():
    field = TrainingConfig.model_fields["recalibration"]
    assert set(get_args(field.annotation)) == set(KINDS) == {"none", "temperature", "platt"}
    assert TrainingConfig().recalibration == "temperature"
    with pytest.raises(ValueError, match="recalibration"):
        TrainingConfig(recalibration="isotonic")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- trainer


def test_fit_recalibration_on_validation_lowers_its_logloss_and_needs_the_raw_model():
    spec = make_spec()
    valid = make_inputs(spec, 3_000, seed=8)
    torch.manual_seed(2)
    model = CTRModel(spec, BackboneConfig(hidden_units=[16], embedding_init_std=0.5)).eval()
    z = predict_logits(model, valid)
    fitted = fit_recalibration(model, valid, "temperature", "m")
    assert fitted.kind == "temperature" and fitted.scale != 1.0
    assert fitted.log_loss(z, valid.label) < Recalibration().log_loss(z, valid.label)
    assert fit_recalibration(model, valid, "none") == Recalibration()
    served = CTRModel(spec, model.cfg, fitted)
    with pytest.raises(ValueError, match="already carries temperature scaling"):
        fit_recalibration(served, valid, "platt", "served")
