"""Issue 12, items 1, 2, 4 and 5: tables as practitioners bring them.

Each test failed on the code before issue 12: the timestamp-range error named neither the setting nor
the file; ``schema.user``/``schema.item`` were required; a directed count that is zero for 97% of the
rows collapsed to one bucket (never constrained, and nothing logged); ``--params`` on one key of a group
lost the environment's or base's siblings.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import FeatureConfig, SchemaConfig, ValidationConfig
from ccss_pipeline.data.interactions import build_interactions
from ccss_pipeline.data.transformer import UnconstrainedFeatureError
from ccss_pipeline.data.validation import validate_source
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.spec import GROUP_COLUMN, ModelInputs
from tests.kedro_project import SMALL_SYNTHETIC, make_project
from tests.support.frame_stages import bucket_boundaries, fit_feature_spec, to_model_input


def _table(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sparse = np.where(rng.random(n) < 0.03, rng.integers(1, 40, n), 0)  # zero for 97% of rows
    score = rng.normal(0, 1, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-(score + 0.3 * sparse)))).astype(int)
    return pd.DataFrame(
        {
            "label": label,
            "score": score,
            "late_payments": sparse,
            "region": rng.choice(["n", "s", "e", "w"], n),
            "rating": rng.integers(1, 6, n),
        }
    )


NO_IDS = SchemaConfig(
    source="table",
    label="label",
    categorical=["region"],
    numerical=[
        {"name": "score", "direction": 1},
        {"name": "late_payments", "direction": -1, "count": True},
        {"name": "rating", "direction": 1},
    ],
)


# --------------------------------------------------------------------------- 1. the range error
def test_the_timestamp_range_error_names_the_setting_and_the_file():
    log = pd.DataFrame(
        {
            "u": ["a", "b"],
            "i": ["x", "y"],
            "y": [0, 1],
            "t": ["1994-03-01T10:00:00", "1995-07-02T11:00:00"],
            "v": [1.0, 2.0],
        }
    )
    schema = SchemaConfig(
        source="table",
        label="y",
        user="u",
        item="i",
        timestamp="t",
        timestamp_unit="datetime",
        numerical=[{"name": "v", "direction": 1}],
    )
    report = validate_source({"log": log}, {"log": "old.csv"}, schema, ValidationConfig())
    message = report.error_message()
    assert "timestamp in range" in message
    assert "data_validation.timestamp_min" in message and "parameters_data_validation.yml" in message, message
    template = yaml.safe_load(
        (Path(__file__).parents[2] / "conf" / "own_table" / "parameters_data_validation.yml").read_text()
    )
    assert "timestamp_min" in template["data_validation"], "the own-table template carries the setting"


# ------------------------------------------------------------------------------ 2. ids optional
def test_a_table_without_ids_joins_and_fits():
    frame = _table()
    interactions = build_interactions({"log": frame}, NO_IDS)
    assert "user" not in interactions.columns and "item" not in interactions.columns
    assert (interactions[GROUP_COLUMN] == 0).all()  # one group: no GAUC
    spec = fit_feature_spec(interactions, NO_IDS, FeatureConfig())
    assert [c.name for c in spec.categorical] == ["region"]
    assert spec.has_user is False and spec.has_item is False and spec.label_name == "label"
    inputs = ModelInputs.from_frame(to_model_input(interactions, spec), spec)
    assert inputs.cat.shape == (len(frame), 1)


def test_a_per_user_log_feature_without_a_user_column_is_refused():
    with pytest.raises(ValueError, match=r"log_features\[0\].*counts per user, but schema.user is not set"):
        SchemaConfig(
            source="table",
            label="label",
            numerical=[{"name": "score", "direction": 1}],
            log_features=[{"name": "prior", "entity": "user", "stat": "impressions"}],
        )


# ------------------------------------------------------------------------ 4. discrete and tied
def test_a_mostly_zero_directed_count_gets_buckets_and_is_constrained():
    frame = _table()
    interactions = build_interactions({"log": frame}, NO_IDS)
    spec = fit_feature_spec(interactions, NO_IDS, FeatureConfig(n_buckets=16))
    late = next(f for f in spec.numerical if f.name == "late_payments")
    assert late.n_buckets >= 2  # it was 1
    zero_bucket = np.searchsorted(late.boundaries, 0.0, side="right")
    assert zero_bucket == 0 and late.boundaries[0] > 0, "the tied zero has a bucket of its own"
    inputs = ModelInputs.from_frame(to_model_input(interactions, spec), spec)
    p = np.array([0.0, 1.0, 0.0])  # draw only late_payments among the directed features
    pairs = draw_pairs(inputs.bucket, inputs.dense, inputs.label, spec, p, seed=0, move="centre")
    k = [f.name for f in spec.directed].index("late_payments")
    assert (pairs.feature == k).all() and pairs.valid.any(axis=1).mean() > 0.9  # constrained


def test_few_distinct_values_get_one_bucket_each():
    ratings = np.random.default_rng(0).integers(1, 6, 1000).astype(float)
    assert bucket_boundaries(ratings, 16).tolist() == [2.0, 3.0, 4.0, 5.0]
    continuous = np.random.default_rng(0).normal(size=1000)
    edges = bucket_boundaries(continuous, 16)
    assert edges.size == 15 and np.all(np.bincount(np.searchsorted(edges, continuous, side="right")) >= 55)


def test_a_directed_feature_with_one_value_is_a_loud_warning_or_an_error(caplog):
    frame = _table()
    frame["rating"] = 3  # a single value: one bucket
    interactions = build_interactions({"log": frame}, NO_IDS)
    with caplog.at_level(logging.WARNING, logger="ccss_pipeline.data.transformer"):
        spec = fit_feature_spec(interactions, NO_IDS, FeatureConfig())
    assert next(f for f in spec.numerical if f.name == "rating").n_buckets == 1
    assert "['rating']" in caplog.text and "cannot constrain" in caplog.text
    with pytest.raises(UnconstrainedFeatureError, match="rating"):
        fit_feature_spec(interactions, NO_IDS, FeatureConfig(unconstrained_directed="fail"))


# ---------------------------------------------------------------- 5. --params changes one key
@pytest.mark.parametrize("env", [None, "mine"])
def test_params_on_one_key_keeps_its_siblings(env):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = make_project(Path(tempfile.mkdtemp()) / "project", local_catalog=SMALL_SYNTHETIC)
    mine = root / "conf" / "mine"
    mine.mkdir()
    (mine / "parameters_model_training.yml").write_text(
        yaml.safe_dump(
            {"model_training": {"backbones": ["dcn_v2"], "n_seeds": 2, "optimizer": {"learning_rate": 0.01}}}
        )
    )
    bootstrap_project(root)
    # what `kedro run --params model_training.optimizer.seed=1` passes
    with KedroSession.create(
        project_path=root, env=env, runtime_params={"model_training": {"optimizer": {"seed": 1}}}
    ) as session:
        training = session.load_context().params["model_training"]
    assert training.optimizer.seed == 1
    if env == "mine":  # the environment's values stay
        assert training.backbones == ["dcn_v2"] and training.n_seeds == 2 and training.optimizer.learning_rate == 0.01
    else:  # base's values stay
        assert training.backbones == ["dnn", "dcn_v2"] and training.optimizer.batch_size == 1024
        assert training.search.n_trials == 8


def test_split_settings_that_contradict_the_schema_fail_before_any_work():
    from ccss_pipeline.hooks import ConfigurationError, check_parameters

    root = Path(__file__).parents[2]
    params: dict = {}
    for path in sorted((root / "conf" / "base").glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()))
    params["feature_engineering"]["split"]["mode"] = "column"
    params["feature_engineering"]["split"]["labels"] = {"train": 0, "validation": None, "test": 1}  # numbers as text
    with pytest.raises(ConfigurationError) as info:
        check_parameters(params, root / "conf", "local")
    assert "conf/base/parameters_schema.yml: key 'schema.split_column'" in str(info.value)
    params["schema"]["split_column"] = "fold"
    check_parameters(params, root / "conf", "local")


@pytest.mark.slow
def test_a_risk_table_without_ids_or_timestamp_runs_end_to_end(tmp_path):
    """No user, item or timestamp, a seeded stratified random split: every stage runs, the report says
    why there is no GAUC and carries the classification metrics, the HTML embeds its images."""
    from tests.kedro_project import run_pipelines

    root = make_project(tmp_path / "project")
    raw = root / "data" / "01_raw" / "own" / "interactions.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    _table(3000, seed=4).rename(columns={"label": "defaulted"}).to_csv(raw, index=False)
    env = root / "conf" / "own_table"
    schema = NO_IDS.model_dump(exclude={"side_tables", "log_features"}) | {"label": "defaulted"}
    (env / "parameters_schema.yml").write_text(yaml.safe_dump({"schema": schema}))
    (env / "parameters_feature_engineering.yml").write_text(
        yaml.safe_dump({"feature_engineering": {"split": {"mode": "random", "seed": 3}}})
    )
    (env / "parameters_model_training.yml").write_text(
        yaml.safe_dump(
            {
                "model_training": {
                    "backbones": ["dnn"],
                    "n_seeds": 2,
                    "backbone": {"hidden_units": [16], "embedding_dim": 4},
                    "optimizer": {"max_epochs": 2, "device": "cpu", "batch_size": 256},
                    "search": {
                        "n_trials": 2,
                        "n_startup_trials": 1,
                        "max_epochs": 1,
                        "violation_rows": 100,
                        "grid_levels": 10,
                    },
                }
            }
        )
    )
    (env / "parameters_counterfactual_pairs.yml").write_text(
        yaml.safe_dump(
            {"counterfactual_pairs": {"warmup_epochs": 1, "shapley": {"n_samples": 200, "n_permutations": 2}}}
        )
    )
    (env / "parameters_evaluation.yml").write_text(
        yaml.safe_dump(
            {"evaluation": {"device": "cpu", "grid_rows": 100, "grid_levels": 20, "max_rows": 300, "threshold": 0.4}}
        )
    )
    run_pipelines(root, env="own_table", pipeline_names=["__default__"])
    reporting = root / "data" / "08_reporting"
    metrics = yaml.safe_load((reporting / "metrics.json").read_text())
    assert {"dnn__ccss.f1.mean", "dnn__ccss.brier.mean", "dnn__ccss.accuracy.mean", "dnn__ccss.auc.mean"} <= set(
        metrics
    )
    assert not [k for k in metrics if "gauc" in k]
    report = (reporting / "report.md").read_text()
    assert "the schema declares no user column" in report and "P(defaulted)" in report and "click" not in report
    html = (reporting / "report.html").read_text()
    assert 'src="data:image/png;base64,' in html and 'src="plots/' not in html
