from pathlib import Path

import numpy as np
import pytest
import torch

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.scoring import logit_fn, predict_proba, score_fn
from ccss_pipeline.model.synthesis import directed_probabilities, draw_pairs
from ccss_pipeline.model.trainer import train_model
from tests.model.conftest import make_inputs, violation_rate

BB = BackboneConfig(hidden_units=[32, 16])


@pytest.fixture(scope="module")
def data(spec):
    return make_inputs(spec, 3000, seed=2), make_inputs(spec, 1000, seed=3)


def _pairs(spec, train, seed=0, move="centre"):
    p = directed_probabilities(np.ones(len(spec.numerical)), spec)
    return draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=seed, move=move)


def _opt(**kw):
    return OptimizerConfig(**({"batch_size": 256, "max_epochs": 3, "patience": 5, "device": "cpu", "seed": 7} | kw))


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_training_learns_and_is_deterministic(spec, data):
    train, valid = data
    pairs = _pairs(spec, train)
    ccss = ContrastiveConfig(weight=1.0)
    a = train_model(spec, train, valid, BB, ccss, _opt(), pairs)
    b = train_model(spec, train, valid, BB, ccss, _opt(), pairs)
    assert _same(a.model, b.model)
    assert a.best_val_auc > 0.7
    assert [h["epoch"] for h in a.history] == [1, 2, 3]
    assert all(h["samples_per_sec"] > 0 and np.isfinite(h["loss"]) for h in a.history)
    c = train_model(spec, train, valid, BB, ccss, _opt(seed=8), pairs)
    assert not _same(a.model, c.model)


def test_checkpoint_resume_identical(spec, data, tmp_path):
    train, valid = data
    pairs = _pairs(spec, train, move="straddle")
    ccss = ContrastiveConfig(weight=1.0)
    full = train_model(spec, train, valid, BB, ccss, _opt(), pairs)
    first = train_model(spec, train, valid, BB, ccss, _opt(max_epochs=1), pairs, checkpoint_dir=tmp_path)
    assert len(first.history) == 1 and (tmp_path / "checkpoint.pt").exists()
    resumed = train_model(spec, train, valid, BB, ccss, _opt(), pairs, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert _same(full.model, resumed.model)
    assert resumed.best_epoch == full.best_epoch
    # a table of another move is another configuration: the checkpoint is not resumed
    other = _pairs(spec, train, move="centre")
    fresh = train_model(spec, train, valid, BB, ccss, _opt(max_epochs=1), other, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in fresh.history] == [1]


@pytest.mark.parametrize("move,loss", [("within", "margin"), ("edge", "bpr"), ("straddle", "infonce")])
def test_every_move_and_loss_trains(spec, data, move, loss):
    """One epoch per (move, loss) runs end to end with a finite loss that differs from the baseline's."""
    train, valid = data
    pairs = _pairs(spec, train, move=move)
    opt = _opt(max_epochs=1)
    res = train_model(spec, train, valid, BB, ContrastiveConfig(weight=1.0, loss=loss, edge_margin=0.01), opt, pairs)
    base = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), opt, pairs)
    assert np.isfinite(res.history[0]["loss"]) and res.history[0]["loss"] != base.history[0]["loss"]
    assert not _same(res.model, base.model)


def test_lambda_zero_ignores_pairs(spec, data):
    """λ = 0 trains the plain baseline: the same weights with or without a pair table of any move."""
    train, valid = data
    opt = _opt(max_epochs=1)
    none = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), opt, None)
    with_pairs = train_model(
        spec,
        train,
        valid,
        BB,
        ContrastiveConfig(weight=0.0, edge_weight=5.0),
        opt,
        _pairs(spec, train, move="decomposed"),
    )
    assert _same(none.model, with_pairs.model)


def test_infonce_with_edge_move_fails_in_training(spec, data):
    train, valid = data
    with pytest.raises(ValueError, match="'edge'"):
        train_model(
            spec,
            train,
            valid,
            BB,
            ContrastiveConfig(weight=1.0, loss="infonce"),
            _opt(max_epochs=1),
            _pairs(spec, train, move="edge"),
        )


def test_redraw_each_epoch_keeps_the_move(spec, data):
    """Redrawing without a table uses ``move``; a different move gives a different fit."""
    train, valid = data
    p = directed_probabilities(np.ones(len(spec.numerical)), spec)
    ccss = ContrastiveConfig(weight=1.0, edge_margin=0.05)
    fits = {
        m: train_model(
            spec, train, valid, BB, ccss, _opt(max_epochs=1), None, redraw_pairs_each_epoch=True, shapley_p=p, move=m
        )
        for m in ("centre", "straddle")
    }
    assert not _same(fits["centre"].model, fits["straddle"].model)
    with pytest.raises(ValueError, match="shapley_p"):
        train_model(spec, train, valid, BB, ccss, _opt(max_epochs=1), None, redraw_pairs_each_epoch=True)


def test_on_epoch_callback_can_stop(spec, data):
    train, valid = data
    seen = []

    class Stop(Exception):
        pass

    def cb(epoch, auc):
        seen.append((epoch, auc))
        raise Stop

    with pytest.raises(Stop):
        train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), _opt(), None, on_epoch=cb)
    assert seen and seen[0][0] == 1 and 0.5 < seen[0][1] <= 1.0


def _weak_monotone(spec, n, seed):
    """Weak monotone signal plus an interaction, so an unconstrained net's bucket path overfits noise."""
    x = make_inputs(spec, n, seed)
    d = x.dense
    logit = 0.3 * (d[:, 0] - d[:, 1]) + np.where(x.cat[:, 1] % 2 == 0, 1.0, -1.0) * np.sin(2 * d[:, 2]) - 0.3
    x.oracle = 1 / (1 + np.exp(-logit))
    x.label = (np.random.default_rng(seed + 100).random(n) < x.oracle).astype(np.float32)
    return x


@pytest.mark.slow  # ~20 s: two full fits to compare
def test_ccss_lowers_violation_rate(spec):
    train, valid = _weak_monotone(spec, 3000, 2), _weak_monotone(spec, 1000, 3)
    opt = _opt(max_epochs=8, patience=10, learning_rate=5e-3)
    base = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), opt, None)
    ccss = train_model(
        spec,
        train,
        valid,
        BB,
        ContrastiveConfig(weight=3.0, margin=0.02),
        opt,
        None,
        redraw_pairs_each_epoch=True,
        shapley_p=directed_probabilities(np.ones(len(spec.numerical)), spec),
    )
    v_base = violation_rate(score_fn(base.model, "cpu"), valid, spec)
    v_ccss = violation_rate(score_fn(ccss.model, "cpu"), valid, spec)
    assert v_base > 0.05
    assert v_ccss < 0.25 * v_base, (v_base, v_ccss)
    assert ccss.best_val_auc > base.best_val_auc - 0.06
    p = predict_proba(ccss.model, valid)
    assert p.shape == (len(valid),) and ((p > 0) & (p < 1)).all()


def _wrong_edge_jump_share(model, x, spec):
    """Share of (row, directed feature k) with a next bucket where moving k's bucket id from b to b + 1 AT the
    boundary's dense value (the dense input held fixed) moves the logit against k's direction."""
    logits = logit_fn(model, "cpu")
    wrong, total = 0, 0
    for k in spec.directed_indices():
        f = spec.numerical[k]
        b = x.bucket[:, k]
        rows = np.flatnonzero(b < f.n_buckets - 1)  # has a next bucket; never the missing bucket
        if rows.size == 0:
            continue
        dense, lo = x.dense[rows].copy(), x.bucket[rows].copy()
        dense[:, k] = np.asarray(f.boundaries, np.float32)[b[rows]]
        hi = lo.copy()
        hi[:, k] = b[rows] + 1
        jump = f.direction * (logits(x.cat[rows], dense, hi) - logits(x.cat[rows], dense, lo))
        wrong += int((jump < 0).sum())
        total += rows.size
    return wrong / total


def test_straddle_lowers_wrong_bucket_edge_jumps(spec, data):
    """Spec §3.6: the bucket embedding can jump the wrong way at an edge behind the dense slope; the straddle
    move's bucket-only pairs fix that. Same data, seed and budget; only λ differs."""
    train, valid = data
    pairs = _pairs(spec, train, seed=7, move="straddle")
    opt = _opt(max_epochs=2)
    base = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), opt, pairs)
    ccss = train_model(spec, train, valid, BB, ContrastiveConfig(weight=1.0), opt, pairs)
    w_base = _wrong_edge_jump_share(base.model, valid, spec)
    w_ccss = _wrong_edge_jump_share(ccss.model, valid, spec)
    assert w_base > 0.05, w_base  # the baseline does jump the wrong way (else the test proves nothing)
    assert w_ccss < 0.25 * w_base, (w_base, w_ccss)
    assert ccss.best_val_auc > base.best_val_auc - 0.02


def test_a_batch_bar_shows_on_a_terminal_and_nowhere_else(tmp_path):
    """tqdm's bar for the batches of an epoch: drawn on a terminal, absent from logs and CI output."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    script = tmp_path / "fit.py"
    script.write_text(
        "from tests.model.conftest import make_inputs, make_spec\n"
        "from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig\n"
        "from ccss_pipeline.model.trainer import train_model\n"
        "spec = make_spec()\n"
        "train_model(spec, make_inputs(spec, 2000, seed=1), make_inputs(spec, 300, seed=2),\n"
        "            BackboneConfig(hidden_units=[8], embedding_dim=4), ContrastiveConfig(weight=0.0),\n"
        "            OptimizerConfig(batch_size=64, max_epochs=1, device='cpu'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    piped = subprocess.run(
        [sys.executable, str(script)], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert piped.returncode == 0, piped.stderr
    assert "epoch 1/1" not in piped.stderr + piped.stdout
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen([sys.executable, str(script)], cwd=root, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    assert b"epoch 1/1" in seen and b"batch" in seen


def test_small_tables_get_enough_pairs_per_epoch():
    """pair_fraction is raised so an epoch holds min_pairs_per_epoch pairs (up to every row), never lowered."""
    cfg = ContrastiveConfig(pair_fraction=0.1, min_pairs_per_epoch=10_000)
    assert cfg.pair_fraction_for(200_000) == 0.1  # large: as configured
    assert cfg.pair_fraction_for(50_000) == pytest.approx(0.2)
    assert cfg.pair_fraction_for(6_000) == 1.0  # small: every row
    assert ContrastiveConfig(pair_fraction=0.1, min_pairs_per_epoch=0).pair_fraction_for(6_000) == 0.1
    assert ContrastiveConfig(pair_fraction=0.5).pair_fraction_for(0) == 0.5


def test_small_tables_get_enough_steps_per_epoch():
    """batch_size shrinks so an epoch takes at least min_batches_per_epoch steps (never below 32 rows)."""
    cfg = OptimizerConfig(batch_size=1024, min_batches_per_epoch=50)
    assert cfg.batch_size_for(140_000) == 1024  # the default data: as configured
    assert cfg.batch_size_for(4_200) == 84  # a 6,000-row table's training split: 50 steps an epoch
    assert cfg.batch_size_for(500) == 32  # never below 32 rows
    assert OptimizerConfig(batch_size=16, min_batches_per_epoch=50).batch_size_for(500) == 16
    assert OptimizerConfig(batch_size=1024, min_batches_per_epoch=0).batch_size_for(4_200) == 1024


class _ScriptedValidation:
    """Stands in for the trainer's validation: returns scripted AUCs and keeps the weights each saw."""

    def __init__(self, monkeypatch, aucs):
        import ccss_pipeline.model.trainer as trainer_mod

        self.aucs, self.seen = list(aucs), []
        real = trainer_mod.predict_logits

        def logits(model, inputs):
            self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            return real(model, inputs)

        monkeypatch.setattr(trainer_mod, "predict_logits", logits)
        monkeypatch.setattr(trainer_mod, "safe_auc", lambda label, score: self.aucs.pop(0))


def test_validations_inside_an_epoch_keep_the_peak_between_epoch_ends(spec, data, monkeypatch):
    """3 validations an epoch of 12 batches (after batches 4 and 8, and at the end): the best, the
    second, is mid-epoch, and its weights — not the end of an epoch's — are the ones returned."""
    train, valid = data
    script = _ScriptedValidation(monkeypatch, [0.70, 0.90, 0.60, 0.65, 0.66, 0.67])
    opt = _opt(max_epochs=2, validations_per_epoch=3)  # 3,000 rows / 256 = 12 batches
    result = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), opt)
    assert len(script.seen) == 6 and script.aucs == []
    assert result.best_val_auc == 0.90 and result.best_epoch == 1
    best = script.seen[1]
    assert all(torch.equal(result.model.state_dict()[k], best[k]) for k in best)
    assert not all(torch.equal(script.seen[2][k], best[k]) for k in best)  # the epoch's end moved on
    assert [h["val_auc"] for h in result.history] == [0.60, 0.67]  # the epoch records: their ends


def test_early_stopping_inside_an_epoch_counts_patience_in_epochs(spec, data, monkeypatch):
    """patience 1 epoch = 3 validations: falling AUCs stop the fit at the 4th validation without a
    better score — the second inside epoch 2 — where once-an-epoch validation runs three epochs."""
    train, valid = data
    falling = [0.9 - 0.01 * i for i in range(20)]
    script = _ScriptedValidation(monkeypatch, falling)
    opt = _opt(max_epochs=4, patience=1, validations_per_epoch=3)
    result = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), opt)
    # epoch 1: 3 validations (the first is the best); epoch 2: 2 inside it (the 4th bad one stops it)
    # and its record's end-of-epoch validation
    assert len(script.seen) == 3 + 2 + 1 and len(result.history) == 2
    assert result.best_val_auc == pytest.approx(0.9) and result.best_epoch == 1
    once = _ScriptedValidation(monkeypatch, falling)
    plain = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), _opt(max_epochs=4, patience=1))
    assert len(once.seen) == 3 and len(plain.history) == 3  # epochs 2 and 3 without a better score: stop


def test_one_validation_an_epoch_is_the_fit_it_always_was(spec, data):
    train, valid = data
    a = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), _opt(max_epochs=2))
    b = train_model(spec, train, valid, BB, ContrastiveConfig(weight=0.0), _opt(max_epochs=2, validations_per_epoch=1))
    assert _same(a.model, b.model) and a.history[-1]["val_auc"] == b.history[-1]["val_auc"]
