"""Methods compared under one protocol (``ccss_pipeline.tuning.comparison``): every row of the
table, on the tiny table whose true curve wiggles the wrong way (``tests/support/monotone_table.py``),
two trials per tuned row and two seeds. No Kedro."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

pytest.importorskip("lightgbm", reason='LightGBM is in the optional extra "compare": pip install -e ".[compare]"')
pytest.importorskip("monotonicnetworks", reason='the optional extra "compare": pip install -e ".[compare]"')

from ccss_pipeline.config import COMPARED_METHODS, CompareConfig, EvaluationConfig  # noqa: E402
from ccss_pipeline.model.synthesis import draw_pairs  # noqa: E402
from ccss_pipeline.tuning.comparison import (  # noqa: E402
    DELTA_COLUMNS,
    METRICS,
    SEED_COLUMNS,
    SUMMARY_KEYS,
    CompareData,
    ComparisonResult,
    compare_methods,
    comparison_training,
)
from ccss_pipeline.tuning.study_storage import storage_url  # noqa: E402
from tests.support.configs import tiny_training  # noqa: E402
from tests.support.monotone_table import wiggle_inputs, wiggle_spec  # noqa: E402

N_TRIALS, N_SEEDS = 2, 2
BY_CONSTRUCTION = ("monotone_net", "gbdt")
TUNED = ("ccss", "pwl", "hints", "monotone_net", "gbdt")
EVALUATION = EvaluationConfig(grid_levels=20, grid_rows=150, device="cpu")
COMPARE = CompareConfig(n_seeds=N_SEEDS, n_trials=N_TRIALS)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data() -> CompareData:
    spec = wiggle_spec()
    train = wiggle_inputs(spec, 1500, seed=1)
    p = np.full(len(spec.directed), 1.0 / len(spec.directed))
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=0, move="decomposed")
    valid, test = wiggle_inputs(spec, 600, seed=2), wiggle_inputs(spec, 600, seed=3)
    return CompareData(spec, train, valid, test, pairs, p, pairs.move)


@pytest.fixture(scope="module")
def compared(data, tmp_path_factory) -> tuple[ComparisonResult, object]:
    root = tmp_path_factory.mktemp("compare")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return compare_methods(data, tiny_training(), EVALUATION, COMPARE, root), root


def test_rows_monotone_by_construction_read_exactly_zero_wrong_steps(compared):
    result, _ = compared
    seeds = result.seeds.set_index("method")
    for method in BY_CONSTRUCTION:
        assert (seeds.loc[method, "wrong_step_share"] == 0.0).all(), method
        assert (seeds.loc[method, "max_feature_wrong_step_share"] == 0.0).all(), method
        assert (seeds.loc[method, "monotone_row_share"] == 1.0).all(), method
        assert seeds.loc[method, "edge_wrong_share"].isna().all(), method  # no bucket path: n/a
    # the table's wiggle is learned by the unconstrained network, so the sweep can see a wrong step
    assert result.seeds.loc[result.seeds["method"] == "baseline", "wrong_step_share"].gt(0).any()


def test_every_row_has_every_column(compared):
    result, _ = compared
    metrics = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    assert list(result.summary.columns) == [*SUMMARY_KEYS, *metrics, "worst_feature", *DELTA_COLUMNS]
    assert list(result.summary["method"]) == list(COMPARED_METHODS)
    assert list(result.seeds.columns) == SEED_COLUMNS
    assert sorted(result.seeds.groupby("method").size().tolist()) == [N_SEEDS] * len(COMPARED_METHODS)
    for row in result.summary.to_dict("records"):
        for column in [*metrics, *DELTA_COLUMNS]:
            if column.startswith("edge_wrong_share") and not row["edge_test"]:
                assert math.isnan(row[column]), (row["method"], column)
            else:
                assert math.isfinite(row[column]), (row["method"], column)
        assert row["n_seeds"] == N_SEEDS
    assert set(result.summary.loc[~result.summary["edge_test"], "method"]) == set(BY_CONSTRUCTION)
    # each family's time is relative to its own unconstrained fit of the same seed
    assert (result.seeds.loc[result.seeds["method"] == "baseline", "time_ratio"] == 1.0).all()
    assert result.seeds["reference_seconds"].gt(0).all()


def test_delta_auc_of_the_baseline_against_itself_is_zero(compared):
    result, _ = compared
    base = result.summary.set_index("method").loc["baseline"]
    assert (base["delta_auc"], base["delta_auc_ci_low"], base["delta_auc_ci_high"]) == (0.0, 0.0, 0.0)
    assert base["delta_auc_n"] == N_SEEDS
    # every other row's ΔAUC is its AUC minus the baseline's, paired on the seed
    seeds = result.seeds.pivot(index="seed", columns="method", values="auc")
    for method in TUNED:
        expected = float((seeds[method] - seeds["baseline"]).mean())
        assert result.summary.set_index("method").loc[method, "delta_auc"] == pytest.approx(expected)


def test_every_tuned_row_gets_the_same_trial_budget(compared):
    result, root = compared
    summary = result.summary.set_index("method")
    storage = storage_url(root, COMPARE.storage_path)
    for method in TUNED:
        name = summary.loc[method, "study"]
        assert name.startswith("ccss-compare"), name  # the comparison's own studies
        study = optuna.load_study(study_name=name, storage=storage)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        assert len(complete) == N_TRIALS == summary.loc[method, "n_trials"], method
    assert summary.loc["baseline", "n_trials"] == 0 and summary.loc["baseline", "study"] == ""
    assert len(set(summary.loc[list(TUNED), "study"])) == len(TUNED)
    assert set(result.seeds["n_trials"]) == {0, N_TRIALS}


def test_markdown_names_every_method_and_reads_the_numbers(compared):
    result, _ = compared
    md = result.markdown()
    assert md.startswith("## Methods compared")
    for method in COMPARED_METHODS:
        assert f"(`{method}`)" in md, method
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(COMPARED_METHODS)
    assert {line.count("|") for line in table} == {13}  # 12 columns on every line
    assert "n/a (no bucket path)" in md and "Where CCSS wins:" in md and "Where CCSS loses:" in md
    assert f"{100 * result.summary.set_index('method').loc['baseline', 'wrong_step_share_mean']:.2f}%" in md


def test_a_second_run_resumes_the_studies(data, compared):
    """The same comparison again runs no trial: every study already holds its budget."""
    result, root = compared
    storage = storage_url(root, COMPARE.storage_path)
    before = len(optuna.get_all_study_summaries(storage))
    fewer = COMPARE.model_copy(update={"methods": ["baseline", "gbdt"], "n_seeds": 1})
    again = compare_methods(data, tiny_training(), EVALUATION, fewer, root)
    assert len(optuna.get_all_study_summaries(storage)) == before
    gbdt = again.summary.set_index("method").loc["gbdt"]
    assert gbdt["study"] == result.summary.set_index("method").loc["gbdt", "study"] and gbdt["n_trials"] == N_TRIALS
    study = optuna.load_study(study_name=gbdt["study"], storage=storage)
    assert len(study.trials) == N_TRIALS


def test_comparison_search_settings():
    training = tiny_training(n_trials=8, n_startup_trials=3)
    search = comparison_training(training, CompareConfig(n_trials=2, backbone="dcn_v2")).search
    assert (search.n_trials, search.n_startup_trials, search.study_name) == (2, 1, "ccss-compare")
    assert search.storage_path == CompareConfig().storage_path != training.search.storage_path
    assert comparison_training(training, CompareConfig()).search.n_trials == 8  # null: the training's budget
    assert comparison_training(training, CompareConfig(backbone="dcn_v2")).backbones == ["dcn_v2"]


def test_config_refuses_a_comparison_without_its_reference():
    with pytest.raises(ValueError, match="baseline"):
        CompareConfig(methods=["ccss", "gbdt"])
    with pytest.raises(ValueError, match="twice"):
        CompareConfig(methods=["baseline", "gbdt", "gbdt"])
    with pytest.raises(ValueError, match="data"):
        CompareConfig(storage_path="/tmp/studies.db")


def test_two_shares_are_printed_with_the_decimals_that_tell_them_apart():
    from ccss_pipeline.evaluation.comparison_reading import _pct_pair

    assert _pct_pair(0.0123, 0.0456) == "1.23% vs 4.56%"
    assert _pct_pair(0.00002, 0.0) == "0.002% vs 0.000%"  # KuaiRand CCSS against an exact row
    assert _pct_pair(0.000002, 0.0) == "0.0002% vs 0.0000%"
    assert _pct_pair(0.00031, 0.0) == "0.03% vs 0.00%"
