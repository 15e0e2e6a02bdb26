"""Issue 28 (reliability round 3), items 1–4: what the report and the model card said wrongly or not at all.

1. the split sentence was "time-ordered …" for every run, a random or a ``column`` split included; it now
   has one home, :func:`ccss_pipeline.data.splitting.split_sentence`, which the report and the card use;
2. a verdict read AUC and monotonicity only: a GAUC drop or a LogLoss rise whose paired interval excludes
   0 went unmentioned; every such cost is now in the verdict;
3. 3-seed t-intervals of shares printed as "[−80.9 pp, +149.9 pp]": intervals of shares are clipped to
   what a share can be, and with too few seeds (or an interval wider than the range) none is printed;
4. a final fit whose best epoch was its last allowed one (likely undertrained) was said nowhere: the
   training log, the report and the model card now say it.

Node functions (``write_report``, ``write_model_card``, ``aggregate_over_seeds``) on hand-made per-seed
figures: fast, no training.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from ccss_pipeline.config import (
    BackboneConfig,
    EvaluationConfig,
    FeatureConfig,
    OptimizerConfig,
    SplitConfig,
)
from ccss_pipeline.data.splitting import split_sentence
from ccss_pipeline.data.validation import TableStats, ValidationReport
from ccss_pipeline.evaluation.aggregate import aggregate_over_seeds
from ccss_pipeline.evaluation.figures import FigureSet
from ccss_pipeline.evaluation.findings import ModelResult, collect_findings
from ccss_pipeline.evaluation.report import ReportContext, render_report
from ccss_pipeline.evaluation.results import SEED_KEYS
from ccss_pipeline.evaluation.seeds import TOO_FEW_SEEDS, share_interval
from ccss_pipeline.evaluation.verdicts import costs, verdict
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.epoch_limit import at_epoch_limit, warn_at_epoch_limit
from ccss_pipeline.model.persistence import TrainedModel
from ccss_pipeline.pipelines.evaluation.nodes import write_model_card, write_report
from tests.model.conftest import make_spec

SEEDS = (0, 1, 2)
MAX_EPOCHS = 8
EVALUATION = EvaluationConfig(device="cpu")
# per variant, one value per seed. CCSS − baseline: AUC within the noise (+0.001, −0.002, +0.001), GAUC
# −0.005 and LogLoss +0.023 with tight intervals (the costs), accuracy within the noise, monotonicity better
FIGURES = {
    "baseline": {"auc": [0.770, 0.772, 0.768], "gauc": [0.700, 0.702, 0.698], "logloss": [0.450, 0.452, 0.448],
                 "accuracy": [0.800, 0.810, 0.790], "brier": [0.14, 0.14, 0.14],
                 "wrong_step_share": [0.10, 0.12, 0.14], "edge_wrong_share": [0.3, 0.3, 0.3],
                 "monotone_row_share": [0.20, 0.30, 0.25]},
    "ccss": {"auc": [0.771, 0.770, 0.769], "gauc": [0.6950, 0.6971, 0.6929], "logloss": [0.4730, 0.4752, 0.4708],
             "accuracy": [0.800, 0.812, 0.789], "brier": [0.14, 0.14, 0.14],
             "wrong_step_share": [0.010, 0.012, 0.011], "edge_wrong_share": [0.01, 0.02, 0.015],
             "monotone_row_share": [0.90, 0.95, 0.92]},
}  # fmt: skip
#: (variant, seed) whose best epoch is the last allowed one
AT_LIMIT = {("ccss", 1)}


def _seed_metrics() -> pd.DataFrame:
    """``seed_metrics`` as ``evaluate_models`` writes it, for one backbone (dnn) over three seeds."""
    rows = []
    for variant, figures in FIGURES.items():
        for i, seed in enumerate(SEEDS):
            best = MAX_EPOCHS if (variant, seed) in AT_LIMIT else 5
            rows.append({"model": f"dnn__{variant}__seed{seed}", "backbone": "dnn", "variant": variant, "seed": seed,
                         "recalibration": "none", "best_epoch": best, "max_epochs": MAX_EPOCHS,
                         **{m: v[i] for m, v in figures.items()}})  # fmt: skip
    return pd.DataFrame(rows)


def _csv_round_trip(frame: pd.DataFrame, tmp_path: Path, name: str) -> pd.DataFrame:
    """What the next node loads: the catalog keeps these tables as CSV."""
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return pd.read_csv(path)


@pytest.fixture
def aggregated(tmp_path):
    aggregate = aggregate_over_seeds(_seed_metrics())
    summary, paired = aggregate.summary, aggregate.paired
    return _csv_round_trip(summary, tmp_path, "seed_summary"), _csv_round_trip(paired, tmp_path, "paired")


SPLIT_REPORT = ValidationReport(True, tables={s: TableStats(f"{s}.parquet", s, n, 20)
                                              for s, n in {"train": 800, "validation": 100, "test": 100}.items()})  # fmt: skip
RESULTS = {f"dnn__{v}__seed{s}": {"backbone": "dnn", "variant": v, "seed": s, "move": "straddle" if v == "ccss" else None,
                                  "accuracy": {"gauc": 0.7}} for v in FIGURES for s in SEEDS}  # fmt: skip


def _report(aggregated, split: SplitConfig) -> str:
    summary, paired = aggregated
    findings = collect_findings(RESULTS, summary, paired, pd.DataFrame(), pd.DataFrame(), make_spec(), {}, SPLIT_REPORT)
    md, _ = write_report(findings, FigureSet(), None, EVALUATION, FeatureConfig(split=split))
    return md


def _card(aggregated, split: SplitConfig) -> str:
    summary, paired = aggregated
    frame = pd.DataFrame({"x": [1.0]})
    lineage = {"git_commit": "unknown", "git_dirty": None, "dvc_lock": None, "env": "base", "artifacts": {}}
    parameters = {"schema": {"timestamp": None}, "feature_engineering": {"split": split.model_dump(mode="json")}}
    findings = collect_findings(RESULTS, summary, paired, pd.DataFrame(), pd.DataFrame(), make_spec(), {}, SPLIT_REPORT)
    md, _ = write_model_card(findings, FigureSet(), frame, frame, frame, lineage, parameters, EVALUATION)
    return md


def _verdict(md: str) -> str:
    return next(line for line in md.splitlines() if line.startswith("Verdict — dnn"))


# ------------------------------------------------------------------------------- 1. the split sentence

SPLITS = [
    SplitConfig(mode="time"),
    SplitConfig(mode="random", seed=7),
    SplitConfig(mode="random", stratify=False),
    SplitConfig(mode="column"),
    SplitConfig(mode="column", labels={"validation": None}),
]


@pytest.mark.parametrize("split", SPLITS, ids=lambda s: f"{s.mode}-{s.stratify}-{s.labels.validation}")
def test_the_report_and_the_card_word_the_split_as_it_was_made(aggregated, split):
    report, card = _report(aggregated, split), _card(aggregated, split)
    sentence = split_sentence(split)
    assert f"Splits: {sentence}" in report  # one home: the same words in both documents
    assert f"Split mode: {split.mode} — {sentence}." in card
    if split.mode == "time":
        assert "time-ordered" in report
    else:  # a split that is not by time must never claim to be
        assert "time-ordered" not in report and "time-ordered" not in card
        assert "not" in sentence and "ordered in time" in sentence
        assert "time-later" not in report


def test_the_split_sentence_follows_the_configuration():
    assert "seed 7" in split_sentence(SplitConfig(mode="random", seed=7))
    assert "not stratified" in split_sentence(SplitConfig(mode="random", stratify=False))
    assert "stratified by the label" in split_sentence(SplitConfig(mode="random"))
    assert "carved from the train rows" in split_sentence(SplitConfig(mode="column", labels={"validation": None}))
    assert "carved" not in split_sentence(SplitConfig(mode="column"))
    assert "order of the rows" in split_sentence(SplitConfig(mode="row_order"))


# ------------------------------------------------------------------------------- 2. costs in the verdict


def test_the_verdict_names_every_metric_ccss_demonstrably_worsens(aggregated):
    line = _verdict(_report(aggregated, SplitConfig()))
    assert "keeps AUC within the seed noise" in line  # AUC: no cost
    assert "Costs beyond the seed noise" in line, line
    costs_part = line[line.index("Costs beyond the seed noise") :]
    assert "GAUC -0.0050 [" in costs_part and "LogLoss +0.0230 [" in costs_part, costs_part
    # within the noise (accuracy), unchanged (Brier) or better (monotonicity): not a cost
    for better in ("accuracy", "Brier", "wrong-step", "edge test", "rows monotone"):
        assert better not in costs_part, better


def test_costs_read_each_metric_on_its_own_worse_side():
    tight = {"n": 3, "std": 0.001}
    paired = {
        "gauc": {**tight, "mean": -0.005, "ci_low": -0.008, "ci_high": -0.002},  # fell: a cost
        "logloss": {**tight, "mean": 0.023, "ci_low": 0.010, "ci_high": 0.036},  # rose: a cost
        "brier": {**tight, "mean": -0.01, "ci_low": -0.02, "ci_high": -0.005},  # fell: better
        "recall": {**tight, "mean": 0.02, "ci_low": 0.01, "ci_high": 0.03},  # rose: better
        "monotone_row_share": {**tight, "mean": -0.10, "ci_low": -0.12, "ci_high": -0.08},  # fell: a cost
        "edge_wrong_share": {**tight, "mean": 0.01, "ci_low": -0.01, "ci_high": 0.03},  # contains 0
        "recalibration_temperature": {**tight, "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6},  # no worse side
    }
    assert costs(paired) == ["gauc", "logloss", "monotone_row_share"]
    base = ModelResult("dnn", "baseline", 3, {"auc": 0.7, "wrong_step_share": 0.1}, {})
    ccss = ModelResult("dnn", "ccss", 3, {"auc": 0.7, "wrong_step_share": 0.05}, {})
    text = verdict("dnn", base, ccss, paired)
    assert "rows monotone over the whole grid -10.00 pp [-12.00 pp, -8.00 pp]" in text, text
    assert "GAUC" not in verdict("dnn", base, ccss, paired, hidden={"gauc"})  # a hidden row stays hidden


# ----------------------------------------------------------------------------- 3. intervals of shares


def test_share_intervals_are_clipped_to_the_range_or_not_printed():
    assert share_interval(-0.1, 0.3, 3) == (0.0, 0.3)  # a share: [0, 1]
    assert share_interval(-0.1, 0.3, 3, difference=True) == (-0.1, 0.3)  # a difference of shares: [-1, 1]
    assert share_interval(-0.5, 1.2, 5, difference=True) == (-0.5, 1.0)
    assert share_interval(-0.809, 1.499, 3, difference=True) is None  # wider than the whole range
    assert share_interval(-0.2, 1.3, 4) is None  # wider than [0, 1]
    assert share_interval(0.01, 0.02, 2) is None  # two seeds: too few
    assert share_interval(float("nan"), 0.1, 5) is None


def _paired_rows(**rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{"backbone": "dnn", "metric": m, "std": 0.1, **r} for m, r in rows.items()])


def test_the_paired_table_never_prints_an_interval_no_share_can_have():
    paired = _paired_rows(
        wrong_step_share={"n": 3, "mean": 0.345, "ci_low": -0.809, "ci_high": 1.499},  # the interval
        edge_wrong_share={"n": 3, "mean": 0.40, "ci_low": -0.05, "ci_high": 1.20},  # clipped at +100 pp
        monotone_row_share={"n": 2, "mean": 0.05, "ci_low": 0.04, "ci_high": 0.06},  # two seeds
        auc={"n": 2, "mean": 0.001, "ci_low": -0.002, "ci_high": 0.004},  # not a share: printed as it is
    )
    results = [ModelResult("dnn", v, 3, {"auc": 0.7, "wrong_step_share": 0.2}, {}) for v in ("baseline", "ccss")]
    ctx = ReportContext("t", "s", {}, {}, ["dnn"], results, paired=paired)
    md, html = render_report(ctx)
    for text in (md, html):
        assert "-80.90 pp" not in text and "+149.90 pp" not in text and "+120.00 pp" not in text
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert rows["raw-grid wrong-step share (pooled)"].endswith(f"| {TOO_FEW_SEEDS} |")
    assert rows["edge test: rows moving the wrong way"].endswith("| [-5.00 pp, +100.00 pp] |")
    assert rows["rows monotone over the whole grid"].endswith(f"| {TOO_FEW_SEEDS} |")
    assert rows["AUC"].endswith("| [-0.0020, +0.0040] |")
    # the verdict reads the interval the table prints: none for the wrong-step share
    assert "interval of the paired difference" not in _verdict(md)


# ------------------------------------------------------------------------------- 4. the epoch limit


def test_a_fit_at_its_epoch_limit_is_named_in_the_report_and_the_card(aggregated):
    summary, _ = aggregated
    assert summary.set_index("variant").loc["ccss", "epoch_limit_seeds"] == "[1]"  # survives the CSV
    expected = (
        "Likely undertrained: dnn CCSS, seed 1 (of 3) — the best validation epoch was the last one allowed "
        f"(model_training.optimizer.max_epochs = {MAX_EPOCHS})"
    )
    for md in (_report(aggregated, SplitConfig()), _card(aggregated, SplitConfig())):
        assert expected in md, md
        assert "Likely undertrained: dnn baseline" not in md  # its best epochs were before the limit


def test_the_epoch_limit_rule():
    assert at_epoch_limit(8, 8) and not at_epoch_limit(7, 8)
    assert not at_epoch_limit(None, 8) and not at_epoch_limit(float("nan"), 8) and not at_epoch_limit(8, None)
    assert "best_epoch" in SEED_KEYS and "max_epochs" in SEED_KEYS


def _trained(best_epoch: int, max_epochs: int, variant: str = "ccss", seed: int = 3) -> TrainedModel:
    spec = make_spec()
    model = CTRModel(spec, BackboneConfig(name="dnn", hidden_units=[4], embedding_dim=2))
    optimizer = OptimizerConfig(max_epochs=max_epochs, device="cpu")
    return TrainedModel.of(model, spec, variant, seed, optimizer=optimizer, best_epoch=best_epoch)


def test_the_training_log_warns_of_a_fit_at_its_epoch_limit(caplog):
    with caplog.at_level(logging.WARNING, logger="ccss_pipeline.model.epoch_limit"):
        assert warn_at_epoch_limit(_trained(6, 6))
        assert not warn_at_epoch_limit(_trained(4, 6, seed=4))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "dnn ccss seed 3" in lines[0] and "max_epochs = 6" in lines[0] and "undertrained" in lines[0]


def test_train_final_models_warns_for_each_fit_at_its_epoch_limit(monkeypatch, caplog):
    """The node itself (its fits replaced by instant results): the first seed's fits stopped at the limit."""
    from ccss_pipeline.config import TrainingConfig
    from ccss_pipeline.model.calibration import Recalibration
    from ccss_pipeline.model.trainer import TrainResult
    from ccss_pipeline.pipelines.model_training import nodes

    spec = make_spec()
    training = TrainingConfig(backbones=["dnn"], n_seeds=2, backbone=BackboneConfig(hidden_units=[4], embedding_dim=2),
                              optimizer=OptimizerConfig(max_epochs=3, device="cpu", seed=0))  # fmt: skip

    def fake_fits(fits, data, distributed):
        model = CTRModel(spec, fits[0].backbone)
        return {f.key: TrainResult(model, best_epoch=3 if f.optimizer.seed == 0 else 2) for f in fits}

    monkeypatch.setattr(
        nodes, "stage_inputs", lambda *a, **k: nodes.StageInputs(spec, None, None, None, None, "straddle")
    )
    monkeypatch.setattr(nodes, "require_spec", lambda *a, **k: None)
    monkeypatch.setattr(nodes, "run_fits", fake_fits)
    monkeypatch.setattr(nodes, "fit_recalibration", lambda *a, **k: Recalibration())
    chosen = ChosenParams(loss="margin", weight=1.0, margin=0.01, temperature=0.1, learning_rate=0.001,
                          source="defaults", val_auc=None, val_wrong_step_share=None, feasible=None,
                          max_violation=0.01, study="s", n_trials=0)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ccss_pipeline.model.epoch_limit"):
        models, history = nodes.train_final_models(None, None, spec, None, None, {"dnn": chosen}, Path("."), training)
    warned = sorted(r.getMessage().split(":")[0] for r in caplog.records)
    assert warned == ["dnn baseline seed 0", "dnn ccss seed 0"], warned
    assert history["dnn__ccss__seed0"]["at_epoch_limit"] is True
    assert history["dnn__ccss__seed1"]["at_epoch_limit"] is False
    assert models["dnn__ccss__seed0"].best_epoch == 3 and models["dnn__ccss__seed1"].best_epoch == 2
