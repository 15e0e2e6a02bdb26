"""Issue 11, items 1, 8 and 9: configurations that used to run (to a wrong or useless end) are refused
before any work, naming the key.

Each case failed on the code before issue 11: the label as a feature gave test AUC 1.0 with exit 0,
``seed=-1`` crashed late, ``learning_rate=inf`` and ``hidden_units=[0]`` trained to AUC 0.5, a folder as
the Optuna storage crashed in SQLite, a malformed ``timestamp_min`` failed inside the gate, and
``--params search.n_trials=1`` or a top-level ``training:`` block were silently ignored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccss_pipeline.config import SchemaConfig, TrainingConfig
from ccss_pipeline.hooks import ConfigurationError, check_parameters
from tests.kedro_project import REPO, SMALL_SYNTHETIC, make_project, run_pipelines


def _base_params() -> dict[str, Any]:
    params: dict[str, Any] = {}
    for path in sorted((REPO / "conf" / "base").glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()))
    return params


def _message(params: dict[str, Any], env: str = "local", runtime_keys: set[str] | None = None) -> str:
    with pytest.raises(ConfigurationError) as info:
        check_parameters(params, REPO / "conf", env, runtime_keys=runtime_keys)
    return str(info.value)


# ------------------------------------------------------------------------------ 1. label leakage
@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda s: s["numerical"].append({"name": "is_click", "direction": 1}),
            "schema.numerical[7].name is 'is_click'",
        ),
        (lambda s: s.update(item="is_click"), "schema.label and schema.item are the same column 'is_click'"),
        (lambda s: s["categorical"].append("is_click"), "schema.categorical[3] is 'is_click'"),
        (
            lambda s: s["log_features"].__setitem__(0, {**s["log_features"][0], "name": "time_ms"}),
            "schema.log_features[0].name is 'time_ms', the timestamp column",
        ),
        (
            lambda s: s["numerical"].append({"name": "video_id", "direction": "none"}),
            "schema.numerical[7].name is 'video_id', the item column",
        ),
        (lambda s: s.update(user="video_id"), "schema.user and schema.item are the same column 'video_id'"),
    ],
    ids=[
        "label-as-numerical",
        "label-as-item-id",
        "label-as-categorical",
        "timestamp-as-log-feature",
        "item-id-as-numerical",
        "user-is-item",
    ],
)
def test_a_column_in_two_roles_is_refused(edit, named):
    params = _base_params()
    edit(params["schema"])
    message = _message(params)
    assert "conf/base/parameters_schema.yml: key 'schema'" in message, message
    assert named in message, message
    assert "a feature may not be the label" in message or "must be different columns" in message


def test_label_leakage_wording_is_explicit():
    params = _base_params()
    params["schema"]["numerical"].append({"name": "is_click", "direction": 1})
    assert "label leakage" in _message(params)


def test_the_library_refuses_it_too():
    """The rule lives on the typed model, so plain-library users (no Kedro) get it as well."""
    raw = copy.deepcopy(_base_params()["schema"])
    raw["numerical"].append({"name": "is_click", "direction": 1})
    with pytest.raises(ValueError, match="label leakage"):
        SchemaConfig.model_validate(raw)


# ------------------------------------------------------------------- 8. accepted, then failing late
@pytest.mark.parametrize(
    ("group", "path", "value", "key", "rule"),
    [
        ("model_training", ["optimizer", "seed"], -1, "model_training.optimizer.seed", "greater than or equal to 0"),
        (
            "model_training",
            ["optimizer", "seed"],
            10**14,
            "model_training.optimizer.seed",
            "less than or equal to 4294967295",
        ),
        ("counterfactual_pairs", ["seed"], -3, "counterfactual_pairs.seed", "greater than or equal to 0"),
        ("evaluation", ["seed"], 2**40, "evaluation.seed", "less than or equal to 4294967295"),
        (
            "model_training",
            ["optimizer", "learning_rate"],
            float("inf"),
            "model_training.optimizer.learning_rate",
            "finite number",
        ),
        (
            "model_training",
            ["contrastive", "margin"],
            float("nan"),
            "model_training.contrastive.margin",
            "finite number",
        ),
        (
            "model_training",
            ["search", "storage_path"],
            "data",
            "model_training.search.storage_path",
            "must name an SQLite file",
        ),
        (
            "model_training",
            ["backbone", "hidden_units"],
            [0],
            "model_training.backbone.hidden_units[0]",
            "greater than or equal to 1",
        ),
        ("model_training", ["backbone", "hidden_units"], [], "model_training.backbone.hidden_units", "at least 1 item"),
        ("data_validation", ["timestamp_min"], "2000-13-45", "data_validation.timestamp_min", "must be a date"),
        ("data_validation", ["timestamp_max"], "1999-01-01", "data_validation", "must be before timestamp_max"),
    ],
    ids=[
        "seed-negative",
        "seed-1e14",
        "pairs-seed-negative",
        "eval-seed-huge",
        "lr-inf",
        "margin-nan",
        "storage-folder",
        "hidden-zero",
        "hidden-empty",
        "timestamp-min-malformed",
        "timestamp-bounds-reversed",
    ],
)
def test_values_the_run_cannot_use_are_refused_naming_the_key(group, path, value, key, rule):
    params = _base_params()
    node = params[group]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    message = _message(params)
    assert f"key '{key}'" in message, message
    assert rule in message, message


def test_seed_plus_n_seeds_must_stay_a_seed():
    with pytest.raises(ValueError, match="exceeds the largest seed"):
        TrainingConfig.model_validate({"optimizer": {"seed": 2**32 - 2}, "n_seeds": 3})


# ------------------------------------------------------------------------------ 9. unknown keys
def test_a_runtime_key_that_is_no_parameter_is_an_error_with_the_real_path():
    params = _base_params()
    params["search"] = {"n_trials": 1}
    message = _message(params, runtime_keys={"search"})
    assert "runtime --params: key 'search': unknown top-level key" in message, message
    assert "did you mean 'model_training.search.n_trials'" in message, message


def test_an_unknown_top_level_block_in_a_file_is_an_error(tmp_path):
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    (root / "conf" / "local" / "parameters_training.yml").write_text(yaml.safe_dump({"training": {"lr": 0.1}}))
    with pytest.raises(ConfigurationError) as info:
        run_pipelines(root, pipeline_names=["data_validation"])
    message = str(info.value)
    assert "conf/local/parameters_training.yml: key 'training': unknown top-level key" in message, message
    assert not [p for p in (root / "data").rglob("*") if p.is_file()], "nothing may be written"


def test_runtime_keys_the_catalog_reads_are_allowed_only_where_it_reads_them():
    params = _base_params()
    params["table_path"] = "my.csv"
    check_parameters(params, REPO / "conf", "own_table", runtime_keys={"table_path"})  # read by its catalog
    message = _message(params, env="local", runtime_keys={"table_path"})  # the default env never reads it
    assert "key 'table_path': unknown top-level key" in message and "runtime-only" not in message.split("table_path")[0]


def test_storage_path_that_is_an_existing_folder_is_named(tmp_path: Path):
    from ccss_pipeline.tuning.study_storage import storage_url

    (tmp_path / "data" / "study.db").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"data/study.db.*names a folder"):
        storage_url(tmp_path, "data/study.db")
