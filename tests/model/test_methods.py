"""The monotonicity method as one pluggable choice (ccss_pipeline.model.methods): the registry, the
pwl gradient penalty, the hints' torch encoder and moves, the search spaces, the fingerprints, and
CCSS through the new path being the old one. Tiny synthetic specs and tensors, CPU."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import numpy as np
import optuna
import pydantic
import pytest
import torch

from ccss_pipeline.config import (
    BackboneConfig,
    ContrastiveConfig,
    HintsConfig,
    MethodName,
    OptimizerConfig,
    PwlConfig,
    SearchRange,
    TrainingConfig,
)
from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.batches import Batch, device_batches, device_tensors
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.losses import PairOutputs, counterfactual_loss, total_loss
from ccss_pipeline.model.methods import (
    CCSS,
    MonotonicityHints,
    PointwiseGradientPenalty,
    get_method,
    method_names,
    method_of,
)
from ccss_pipeline.model.methods.ccss import suggest_contrastive
from ccss_pipeline.model.methods.hints import (
    STEP_PARAM,
    TorchNumericalEncoder,
    _HintTables,
    draw_hints,
    quantile_span,
)
from ccss_pipeline.model.methods.pwl import gradient_penalty
from ccss_pipeline.model.persistence import TrainedModel
from ccss_pipeline.model.scoring import logit_fn, score_fn
from ccss_pipeline.model.synthesis import PairLookup, directed_probabilities, draw_pairs
from ccss_pipeline.model.train_step import StepForward
from ccss_pipeline.model.trainer import TrainStep, train_epoch, train_model
from ccss_pipeline.spec import QUANTILE_LEVELS, FeatureSpec, ModelInputs, NumericalFeature
from ccss_pipeline.tuning.search import SearchData, run_search
from ccss_pipeline.tuning.selection import best_parameters
from ccss_pipeline.tuning.study import study_name
from tests.model.conftest import make_inputs, make_spec, violation_rate
from tests.support.configs import tiny_training

optuna.logging.set_verbosity(optuna.logging.WARNING)

BB = BackboneConfig(hidden_units=[16, 8])
CPU = torch.device("cpu")


def _opt(**kw) -> OptimizerConfig:
    return OptimizerConfig(
        **(
            {"batch_size": 64, "min_batches_per_epoch": 0, "max_epochs": 1, "patience": 5, "device": "cpu", "seed": 7}
            | kw
        )
    )


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _batch(x: ModelInputs, rows: slice = slice(None)) -> Batch:
    t = device_tensors(x.take(np.arange(len(x))[rows]), CPU)
    return Batch(t[0], t[1], t[2], t[3], None)


class ToyStep(torch.nn.Module):
    """A step whose logit is ``dense @ w + bucket @ v`` (bucket ids as numbers: a bucket-path slope), with
    the trainer's step signature, so a method's term can be checked against a model of known shape."""

    def __init__(self, w: list[float], v: list[float]) -> None:
        super().__init__()
        self.w, self.v = torch.tensor(w, dtype=torch.float32), torch.tensor(v, dtype=torch.float32)

    def score(self, dense: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
        return dense @ self.w + bucket.float() @ self.v

    def forward(self, cat, dense, bucket, *points):
        z = self.score(dense, bucket)
        if not points:
            return z, z[:, None]
        p, feature, pts_bucket, pts_dense = points
        rows = torch.arange(p)
        d, b = dense[:p].clone(), bucket[:p].clone()
        d[rows, feature], b[rows, feature] = pts_dense[:, 0], pts_bucket[:, 0]
        z_pts = self.score(d, b)[:, None]
        return z, z_pts, z[:, None], z_pts[:, :, None]


@pytest.fixture(scope="module")
def toy() -> tuple[FeatureSpec, ModelInputs]:
    spec = make_spec()  # numerical: pos (+1), neg (−1), free (0), flat (+1, one bucket)
    return spec, make_inputs(spec, 400, seed=5)


# ------------------------------------------------------------------------------------- registry, config


def test_get_method_names_the_allowed_ones():
    assert method_names() == sorted(typing.get_args(MethodName)) == ["ccss", "hints", "pwl"]
    assert get_method("pwl") is PointwiseGradientPenalty and get_method("hints") is MonotonicityHints
    with pytest.raises(ValueError, match=r"unknown monotonicity method 'nope'; allowed: \['ccss', 'hints', 'pwl'\]"):
        get_method("nope")
    with pytest.raises(pydantic.ValidationError, match="'ccss', 'pwl' or 'hints'"):
        TrainingConfig(method="nope")
    with pytest.raises(pydantic.ValidationError, match="step_range"):
        HintsConfig(step_range=SearchRange(low=0.1, high=2.0))
    assert isinstance(method_of(TrainingConfig()), CCSS)  # the default


def test_method_of_applies_the_tuned_step():
    training = TrainingConfig(method="hints", hints=HintsConfig(step=0.2))
    assert method_of(training).settings() == {"step": 0.2}
    assert method_of(training, {STEP_PARAM: 0.05}).settings() == {"step": 0.05}
    with pytest.raises(pydantic.ValidationError):
        method_of(training, {STEP_PARAM: 3.0})  # validated like the configured value


# ------------------------------------------------------------------------------------- pwl


def test_gradient_penalty_is_zero_when_monotone_and_positive_when_anti_monotone(toy):
    spec, x = toy
    batch, term = _batch(x), PointwiseGradientPenalty().bind(spec, CPU, 0)
    cfg = ContrastiveConfig()
    # directions (+1, −1, 0, +1): these slopes go the declared way; "free" may do anything
    _, monotone = term(ToyStep([1.0, -2.0, 5.0, 0.5], [0, 0, 0, 0]), batch, cfg)
    assert monotone is not None and float(monotone) == 0.0
    _, anti = term(ToyStep([-1.0, 2.0, -5.0, -0.5], [0, 0, 0, 0]), batch, cfg)
    present = (x.bucket[:, [0, 1, 3]] != [spec.numerical[k].missing_bucket for k in (0, 1, 3)]).astype(float)
    expected = (present * [1.0, 2.0, 0.5]).sum() / present.sum()  # relu(−d_k · w_k), missing rows left out
    assert float(anti) == pytest.approx(expected, rel=1e-6)
    # it is blind to the bucket path: bucket ids that go the wrong way cost nothing (docstring)
    _, blind = term(ToyStep([1.0, -2.0, 0.0, 0.5], [-3.0, 3.0, 0.0, 0.0]), batch, cfg)
    assert float(blind) == 0.0


def test_gradient_penalty_formula():
    grad = torch.tensor([[1.0, 1.0], [-2.0, -3.0]])
    present = torch.tensor([[True, True], [True, False]])
    # d = (+1, −1): wrong-way entries are (0, 1) (slope 1 on a falling feature) and (1, 0) (slope −2)
    assert float(gradient_penalty(grad, torch.tensor([1.0, -1.0]), present)) == pytest.approx((1 + 2) / 3)


# ------------------------------------------------------------------------------------- hints


def _feature(transform: str, mean: float, std: float, bounds: list[float]) -> NumericalFeature:
    centres = [0.0] * (len(bounds) + 1)
    return NumericalFeature("f", 1, transform, mean, std, bounds, centres, centres)


def test_torch_encoder_equals_encode_numerical():
    rng = np.random.default_rng(0)
    features = [
        _feature("identity", 0.3, 1.7, sorted(rng.normal(0, 2, 7).tolist())),
        _feature("log1p", 2.1, 0.8, [0.0, 1.0, 3.0, 10.0, 100.0]),
        _feature("identity", 0.0, 1.0, []),  # one bucket
    ]
    n = 6000
    j = rng.integers(0, len(features), n)
    raw = rng.normal(0, 3, n) * rng.choice([1.0, 10.0, 1e4], n)  # 1e4 × … : beyond the ±10σ clip
    raw[rng.random(n) < 0.05] = np.nan
    raw[:4] = [np.inf, -np.inf, 3.0, 100.0]
    j[2:4] = 1  # exactly on an edge: goes up
    on_edge = rng.integers(0, n, 50)
    j[on_edge] = 0
    raw[on_edge] = rng.choice(features[0].boundaries, 50)
    encoder = TorchNumericalEncoder(features, CPU)
    dense, bucket = encoder.encode(torch.tensor(raw), torch.tensor(j))
    for f_index, f in enumerate(features):
        rows = j == f_index
        want_dense, want_bucket = encode_numerical(raw[rows], f)
        np.testing.assert_array_equal(dense.numpy()[rows], want_dense)
        np.testing.assert_array_equal(bucket.numpy()[rows], want_bucket)
    # decode inverts the dense transform (float32 round trip) wherever the value was not clipped
    back = encoder.decode(dense, torch.tensor(j)).numpy()
    kept = np.isfinite(raw) & (np.abs(dense.numpy()) < 10)
    np.testing.assert_allclose(back[kept], raw[kept], rtol=1e-5, atol=1e-5)


def test_quantile_span_is_the_bulk_of_the_values():
    sketch = np.quantile(np.arange(1001.0), np.linspace(0, 1, QUANTILE_LEVELS)).tolist()
    f = dataclasses.replace(_feature("identity", 0, 1, [1.0, 5.0]), quantiles=sketch)
    assert quantile_span(f) == pytest.approx(980.0)
    zeros = dataclasses.replace(f, quantiles=[0.0] * 1000 + [7.0])  # a 99.9%-zero count: the full range
    assert quantile_span(zeros) == 7.0
    assert quantile_span(_feature("identity", 0, 1, [1.0, 5.0])) == 4.0  # no sketch: the edges
    assert quantile_span(_feature("identity", 0, 1, [])) == 1.0


def test_hints_move_one_present_directed_feature_up_as_at_inference(toy):
    spec, x = toy
    x = x.take(np.arange(len(x)))
    x.bucket[:7, [0, 1, 3]] = [spec.numerical[k].missing_bucket for k in (0, 1, 3)]  # no hint possible here
    torch.manual_seed(0)
    hinted, k, sign, moved_bucket, moved_dense = draw_hints(
        _HintTables.of(spec, CPU), torch.tensor(x.dense), torch.tensor(x.bucket), step=0.3
    )
    hinted, k, moved_bucket, moved_dense = hinted.numpy(), k.numpy(), moved_bucket.numpy(), moved_dense.numpy()
    assert not hinted[:7].any() and hinted[7:].all()
    rows = np.arange(7, len(x))
    assert set(k[rows]) == {0, 1, 3}  # every directed feature is drawn, the undirected one never
    missing = np.array([f.missing_bucket for f in spec.numerical])
    assert (x.bucket[rows, k[rows]] != missing[k[rows]]).all()  # a feature present in the row
    np.testing.assert_array_equal(sign.numpy()[rows], [spec.numerical[i].direction for i in k[rows]])
    row_dense, row_bucket = x.dense[rows, k[rows]], x.bucket[rows, k[rows]]
    assert (moved_dense[rows] >= row_dense).all() and (moved_bucket[rows] >= row_bucket).all()
    assert (moved_dense[rows] > row_dense).mean() > 0.99  # they move up
    assert (moved_bucket[rows] > row_bucket).mean() > 0.2  # and often across an edge: the bucket moves too
    # encoded as at inference: identity features with mean 0 and std 1, so the moved raw value is the
    # moved dense value, and encode_numerical gives the moved bucket for it
    again = np.array([encode_numerical(moved_dense[[i]], spec.numerical[k[i]])[1][0] for i in rows])
    assert (again == moved_bucket[rows]).mean() > 0.99


def test_hints_penalise_the_wrong_way_on_both_paths_where_pwl_sees_one(toy):
    spec, x = toy
    batch, cfg = _batch(x), ContrastiveConfig()
    hints = MonotonicityHints(HintsConfig(step=0.5)).bind(spec, CPU, 200)
    pwl = PointwiseGradientPenalty().bind(spec, CPU, 0)
    torch.manual_seed(1)
    assert float(hints(ToyStep([1.0, -1.0, 0.0, 1.0], [0.5, -0.5, 0.0, 0.0]), batch, cfg)[1]) == 0.0
    bucket_wrong = ToyStep([1.0, -1.0, 0.0, 1.0], [-3.0, 3.0, 0.0, 0.0])  # dense right, buckets wrong
    assert float(pwl(bucket_wrong, batch, cfg)[1]) == 0.0
    assert float(hints(bucket_wrong, batch, cfg)[1]) > 0.0
    assert float(hints(ToyStep([-1.0, 1.0, 0.0, -1.0], [0, 0, 0, 0]), batch, cfg)[1]) > 0.0


# ------------------------------------------------------------------------------------- training


def _weak_monotone(spec: FeatureSpec, n: int, seed: int) -> ModelInputs:
    """A weak monotone signal and a strong interaction, so an unconstrained net has wrong-way slopes."""
    x = make_inputs(spec, n, seed)
    d = x.dense
    logit = 0.3 * (d[:, 0] - d[:, 1]) + np.where(x.cat[:, 1] % 2 == 0, 1.0, -1.0) * np.sin(2 * d[:, 2]) - 0.3
    x.label = (np.random.default_rng(seed + 100).random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return x


@pytest.fixture(scope="module")
def weak(spec):
    return _weak_monotone(spec, 1000, 2), _weak_monotone(spec, 400, 3)


def _dense_wrong_share(model: CTRModel, x: ModelInputs, spec: FeatureSpec, h: float = 1e-2) -> float:
    """Share of (row, present directed feature) where a small step up of the dense input alone (bucket
    kept) moves the logit against the direction: a finite difference, independent of any method's code."""
    logits = logit_fn(model, "cpu")
    base, wrong, total = logits(x.cat, x.dense, x.bucket), 0, 0
    for k in spec.directed_indices():
        present = x.bucket[:, k] != spec.numerical[k].missing_bucket
        dense = x.dense.copy()
        dense[:, k] += h
        step = spec.numerical[k].direction * (logits(x.cat, dense, x.bucket) - base)
        wrong, total = wrong + int(((step < 0) & present).sum()), total + int(present.sum())
    return wrong / total


@pytest.mark.parametrize("name", ["pwl", "hints"])
def test_a_short_training_lowers_the_wrong_way_share_against_lambda_zero(spec, weak, name):
    """Same data, budget and seed, λ = 5 vs λ = 0, measured on validation by code that is not the
    method's: pwl and hints both fix the dense slopes; hints, which move the bucket too, also fix the
    moves to the neighbouring bucket centres (dense and bucket together), which pwl cannot see."""
    train, valid = weak
    method = method_of(TrainingConfig(method=name, hints=HintsConfig(step=0.3)))
    opt = _opt(max_epochs=2, learning_rate=5e-3)
    base, fit = (
        train_model(spec, train, valid, BB, ContrastiveConfig(weight=w), opt, method=method).model for w in (0.0, 5.0)
    )
    dense_base, dense_fit = _dense_wrong_share(base, valid, spec), _dense_wrong_share(fit, valid, spec)
    assert dense_base > 0.05 and dense_fit < 0.25 * dense_base, (dense_base, dense_fit)
    if name == "hints":
        moves_base = violation_rate(score_fn(base, "cpu"), valid, spec)
        moves_fit = violation_rate(score_fn(fit, "cpu"), valid, spec)
        assert moves_base > 0.01 and moves_fit < 0.5 * moves_base, (moves_base, moves_fit)


def test_lambda_zero_is_the_plain_baseline_for_every_method(spec, weak):
    train, valid = weak
    opt, zero = _opt(), ContrastiveConfig(weight=0.0)
    plain = train_model(spec, train, valid, BB, zero, opt)
    for name in ("pwl", "hints"):
        method = method_of(TrainingConfig(method=name))
        assert _same(plain.model, train_model(spec, train, valid, BB, zero, opt, method=method).model)
        fit = train_model(spec, train, valid, BB, ContrastiveConfig(weight=1.0), opt, method=method)
        assert not _same(plain.model, fit.model)


def test_hints_resume_from_a_checkpoint_exactly(spec, weak, tmp_path):
    """The hints draw from torch's RNG, which the checkpoint carries: 1 + 1 epochs = 2 epochs."""
    train, valid = weak
    hints, cfg = method_of(TrainingConfig(method="hints")), ContrastiveConfig(weight=2.0)
    full = train_model(spec, train, valid, BB, cfg, _opt(max_epochs=2), method=hints)
    train_model(spec, train, valid, BB, cfg, _opt(max_epochs=1), checkpoint_dir=tmp_path, method=hints)
    resumed = train_model(spec, train, valid, BB, cfg, _opt(max_epochs=2), checkpoint_dir=tmp_path, method=hints)
    assert _same(full.model, resumed.model)


def test_a_checkpoint_of_one_method_is_not_resumed_by_another(spec, weak, tmp_path):
    train, valid = weak
    cfg = ContrastiveConfig(weight=2.0)
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, _p(spec), seed=0)
    pwl = method_of(TrainingConfig(method="pwl"))
    first = train_model(spec, train, valid, BB, cfg, _opt(max_epochs=1), pairs, checkpoint_dir=tmp_path, method=pwl)
    ccss = train_model(spec, train, valid, BB, cfg, _opt(max_epochs=2), pairs, checkpoint_dir=tmp_path)
    fresh = train_model(spec, train, valid, BB, cfg, _opt(max_epochs=2), pairs)
    assert ccss.history[0]["loss"] != first.history[0]["loss"]
    assert _same(ccss.model, fresh.model)


def _p(spec: FeatureSpec) -> np.ndarray:
    return directed_probabilities(np.ones(len(spec.numerical)), spec)


def _old_epoch(step, optimizer, batches, lam, cfg) -> float:
    """The trainer's epoch before methods were pluggable (the CCSS branch inline), kept as the reference."""
    total = 0.0
    for batch in batches:
        pb = batch.pairs
        if pb is None:
            z_o, _ = step(batch.cat, batch.dense, batch.bucket)
            loss = total_loss(z_o, batch.label, None, 0.0)
        else:
            p = len(pb)
            z_o, z_pts, h_o, h_pts = step(
                batch.cat, batch.dense, batch.bucket, p, pb.feature, pb.point_bucket, pb.point_dense
            )
            lc = counterfactual_loss(pb, PairOutputs(z_o[:p], z_pts, h_o[:p], h_pts), cfg)
            loss = total_loss(z_o, batch.label, lc, lam)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
    return total


@pytest.mark.parametrize("move, loss", [("decomposed", "margin"), ("straddle", "infonce")])
def test_ccss_through_the_method_is_the_old_inline_path(spec, weak, move, loss):
    """One epoch from the same weights and batches: the inline CCSS loss of the old trainer and the CCSS
    method's term give identical weights; ``train_model`` with and without ``method=CCSS()`` too."""
    train, valid = weak
    cfg = ContrastiveConfig(weight=1.5, loss=loss)
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, _p(spec), seed=0, move=move)
    lookup, tensors = PairLookup(pairs, len(train), spec, CPU), device_tensors(train, CPU)
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    models = [CTRModel(spec, BB)]
    models.append(CTRModel(spec, BB))
    models[1].load_state_dict(models[0].state_dict())
    opts = [torch.optim.Adam(m.parameters(), lr=5e-3) for m in models]
    old = _old_epoch(StepForward(models[0]), opts[0], device_batches(tensors, perm, 128, lookup, 40), 1.5, cfg)
    step = TrainStep(StepForward(models[1]), opts[1], CCSS().bind(spec, CPU, 40), 1.5, cfg, CPU)
    new = train_epoch(step, device_batches(tensors, perm, 128, lookup, 40))
    assert _same(models[0], models[1]) and new == pytest.approx(old / 8, rel=1e-5)  # 1000 rows: 8 batches
    a = train_model(spec, train, valid, BB, cfg, _opt(), pairs)
    b = train_model(spec, train, valid, BB, cfg, _opt(), pairs, method=method_of(TrainingConfig()))
    assert _same(a.model, b.model)


# ------------------------------------------------------------------------------------- search


def _ask() -> optuna.trial.Trial:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()


def test_each_method_suggests_its_own_space():
    base = tiny_training()
    trial = _ask()
    contrastive, method = method_of(base).suggest(trial, base)
    reference_trial = _ask()
    assert contrastive == suggest_contrastive(reference_trial, base.contrastive, base.search)
    assert trial.params == reference_trial.params and isinstance(method, CCSS)

    pwl = base.model_copy(update={"method": "pwl", "pwl": PwlConfig(weight_range=SearchRange(low=2.0, high=3.0))})
    trial = _ask()
    contrastive, method = method_of(pwl).suggest(trial, pwl)
    assert set(trial.params) == {"weight"} and 2.0 <= contrastive.weight <= 3.0
    assert contrastive.margin == base.contrastive.margin and isinstance(method, PointwiseGradientPenalty)

    hints = base.model_copy(update={"method": "hints", "hints": HintsConfig(step_range=SearchRange(low=0.1, high=0.2))})
    trial = _ask()
    contrastive, method = method_of(hints).suggest(trial, hints)
    assert set(trial.params) == {"weight", STEP_PARAM} and method.settings() == {"step": trial.params[STEP_PARAM]}
    fixed = base.model_copy(update={"method": "hints", "hints": HintsConfig(step=0.07, step_range=None)})
    trial = _ask()
    _, method = method_of(fixed).suggest(trial, fixed)
    assert set(trial.params) == {"weight"} and method.settings() == {"step": 0.07}


@pytest.mark.parametrize(
    "name, update",
    [
        ("ccss", {}),
        ("pwl", {"pwl": PwlConfig(weight_range=SearchRange(low=2.0, high=3.0))}),
        ("hints", {"hints": HintsConfig(weight_range=SearchRange(low=0.5, high=4.0))}),
    ],
)
def test_each_method_names_the_lambda_range_it_draws_from(name, update):
    """``weight_range`` is the distribution ``suggest`` draws λ from (the λ refinement's floor is its low end)."""
    training = tiny_training().model_copy(update={"method": name, **update})
    method = method_of(training)
    trial = _ask()
    method.suggest(trial, training)
    r = method.weight_range(training)
    drawn = trial.distributions["weight"]
    assert (drawn.low, drawn.high, drawn.log) == (r.low, r.high, r.log)
    expected = training.search.weight if name == "ccss" else getattr(training, name).weight_range
    assert r == expected


def test_the_study_name_carries_the_method(spec):
    base = tiny_training()
    name = study_name(base, spec, "d", "dnn")
    # CCSS: no method part (its studies keep their names), and the other methods' blocks do not matter
    other_blocks = base.model_copy(update={"hints": HintsConfig(step=0.3), "pwl": PwlConfig()})
    assert name.startswith("ccss-dnn-") and study_name(other_blocks, spec, "d", "dnn") == name
    pwl = base.model_copy(update={"method": "pwl"})
    hints = base.model_copy(update={"method": "hints"})
    names = [
        study_name(pwl, spec, "d", "dnn"),
        study_name(
            pwl.model_copy(update={"pwl": PwlConfig(weight_range=SearchRange(low=1, high=2))}), spec, "d", "dnn"
        ),
        study_name(hints, spec, "d", "dnn"),
        study_name(hints.model_copy(update={"hints": HintsConfig(step=0.3)}), spec, "d", "dnn"),
    ]
    assert names[0].startswith("ccss-pwl-dnn-") and names[2].startswith("ccss-hints-dnn-")
    assert len({name, *names}) == 5


@pytest.mark.parametrize("name", ["pwl", "hints"])
def test_a_search_runs_with_the_method_and_records_it(name, tmp_path):
    spec = make_spec()
    train, valid = make_inputs(spec, 400, seed=3), make_inputs(spec, 200, seed=4)
    training = tiny_training(n_trials=1).model_copy(update={"method": name})
    study = run_search(SearchData(spec, train, valid, None), training, "dnn", storage_root=tmp_path)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and f"-{name}-dnn-" in study.study_name
    chosen = best_parameters(study, training, spec.fingerprint)
    assert chosen.method == name and chosen.margin == training.contrastive.margin
    assert chosen.method_params == ({STEP_PARAM: trial.params[STEP_PARAM]} if name == "hints" else {})
    assert method_of(training, chosen.method_params).settings() == (
        {"step": trial.params[STEP_PARAM]} if name == "hints" else {}
    )


# ------------------------------------------------------------------------------------- persistence


def test_the_model_record_keeps_the_method_and_old_records_are_ccss(spec):
    model = CTRModel(spec, BackboneConfig(hidden_units=[4]))
    record = TrainedModel.of(model, spec, "ccss", 1, method="hints", method_settings={"step": 0.2})
    again = TrainedModel.from_config(record.name, record.config(), record.state_dict)
    assert (again.method, dict(again.method_settings or {})) == ("hints", {"step": 0.2})
    old = {k: v for k, v in record.config().items() if k not in ("method", "method_settings")}
    assert TrainedModel.from_config(record.name, old, record.state_dict).method == "ccss"
    baseline = TrainedModel.of(model, spec, "baseline", 1)
    old = {k: v for k, v in baseline.config().items() if k not in ("method", "method_settings")}
    assert TrainedModel.from_config(baseline.name, old, baseline.state_dict).method is None


# ------------------------------------------------------------------------------------- the training node


def _chosen(method: str, **params) -> ChosenParams:
    return ChosenParams(loss="margin", weight=2.0, margin=0.01, temperature=0.1, learning_rate=0.001,
                        source="trial 0", val_auc=None, val_wrong_step_share=None, feasible=None,
                        max_violation=0.01, study="s", n_trials=1, method=method, method_params=params)  # fmt: skip


def test_the_final_fits_take_the_method_and_record_it(spec, monkeypatch):
    """The node (its fits replaced by instant results): hints fits get no pairs, the tuned step, and the
    records name the method; a best_params of another method is refused."""
    from ccss_pipeline.lineage import StaleArtifactError
    from ccss_pipeline.model.trainer import TrainResult
    from ccss_pipeline.pipelines.model_training import nodes

    seen = []

    def fake_fits(fits, data, distributed):
        seen.extend(fits)
        return {f.key: TrainResult(CTRModel(spec, f.backbone), best_epoch=1) for f in fits}

    monkeypatch.setattr(
        nodes, "stage_inputs", lambda *a, **k: nodes.StageInputs(spec, None, None, None, None, "decomposed")
    )
    monkeypatch.setattr(nodes, "require_spec", lambda *a, **k: None)
    monkeypatch.setattr(nodes, "run_fits", fake_fits)
    monkeypatch.setattr(nodes, "fit_recalibration", lambda *a, **k: Recalibration())
    training = TrainingConfig(method="hints", n_seeds=1, backbone=BackboneConfig(hidden_units=[4], embedding_dim=2))
    models, _ = nodes.train_final_models(None, None, spec, None, None, {"dnn": _chosen("hints", hint_step=0.04)},
                                         Path("."), training)  # fmt: skip
    fits = {f.key: f for f in seen}
    constrained, baseline = fits["dnn__ccss__seed42"], fits["dnn__baseline__seed42"]
    assert not constrained.with_pairs and constrained.contrastive.weight == 2.0
    assert isinstance(constrained.method, MonotonicityHints) and constrained.method.settings() == {"step": 0.04}
    assert baseline.method is None and baseline.contrastive.weight == 0.0
    record = models["dnn__ccss__seed42"]
    assert (record.variant, record.method, record.method_settings, record.move) == (
        "ccss",
        "hints",
        {"step": 0.04},
        None,
    )
    assert models["dnn__baseline__seed42"].method is None
    with pytest.raises(StaleArtifactError, match="searched for method 'ccss'"):
        nodes.train_final_models(None, None, spec, None, None, {"dnn": _chosen("ccss")}, Path("."), training)
