"""Bad configuration fails before any work starts, naming the parameters file, key path and allowed values.

Each case writes a ``conf/local/parameters_<group>.yml`` override (or passes runtime ``--params``) in a
throw-away project and runs even the ``data_validation`` pipeline: the project hook
(:class:`ccss_pipeline.hooks.ConfigurationCheckHooks`) validates every parameter group, so a bad
``model_training`` key fails a data-only run too, and nothing under ``data/`` is written.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccss_pipeline.hooks import ConfigurationError, check_parameters, find_parameter_file
from tests.kedro_project import REPO, SMALL_SYNTHETIC, make_project, run_pipelines

BACKBONES = "'dnn', 'wide_deep', 'deepfm' or 'dcn_v2'"
LOSSES = "'margin', 'infonce' or 'bpr'"
INSIDE_DATA = "relative path inside the project's data/ folder"


def _base(group: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "conf" / "base" / f"parameters_{group}.yml").read_text())


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node: Any = tree
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _written(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").rglob("*") if p.is_file())


# (id, parameters group (file), dotted path to set, bad value, key path named, rule/allowed values named)
CASES = [
    (
        "unknown-backbone",
        "model_training",
        "model_training.backbone.name",
        "transformer",
        "model_training.backbone.name",
        BACKBONES,
    ),
    (
        "unknown-backbone-in-list",
        "model_training",
        "model_training.backbones",
        ["dnn", "xgboost"],
        "model_training.backbones[1]",
        BACKBONES,
    ),
    (
        "unknown-loss",
        "model_training",
        "model_training.contrastive.loss",
        "hinge",
        "model_training.contrastive.loss",
        LOSSES,
    ),
    (
        "negative-lambda",
        "model_training",
        "model_training.contrastive.weight",
        -0.5,
        "model_training.contrastive.weight",
        "greater than or equal to 0",
    ),
    (
        "negative-margin",
        "model_training",
        "model_training.contrastive.margin",
        -0.01,
        "model_training.contrastive.margin",
        "greater than or equal to 0",
    ),
    (
        "one-bucket",
        "feature_engineering",
        "feature_engineering.n_buckets",
        1,
        "feature_engineering.n_buckets",
        "greater than or equal to 2",
    ),
    ("direction-2", "schema", "schema.numerical.0.direction", 2, "schema.numerical[0].direction", "+1, -1 or none"),
    (
        "direction-up",
        "schema",
        "schema.log_features.1.direction",
        "up",
        "schema.log_features[1].direction",
        "+1, -1 or none",
    ),
    (
        "unknown-transform",
        "schema",
        "schema.numerical.2.transform",
        "sqrt",
        "schema.numerical[2].transform",
        "'log1p' or 'identity'",
    ),
    (
        "checkpoint-dir-parent",
        "model_training",
        "model_training.checkpoint_dir",
        "../outside",
        "model_training.checkpoint_dir",
        INSIDE_DATA,
    ),
    (
        "checkpoint-dir-absolute",
        "model_training",
        "model_training.checkpoint_dir",
        "/tmp/x",
        "model_training.checkpoint_dir",
        INSIDE_DATA,
    ),
    (
        "storage-path-absolute",
        "model_training",
        "model_training.search.storage_path",
        "/tmp/optuna.db",
        "model_training.search.storage_path",
        INSIDE_DATA,
    ),
    (
        "typo-optimiser",
        "model_training",
        "model_training.optimiser",
        {"learning_rate": 0.01},
        "model_training.optimiser",
        "unknown key",
    ),
    (
        "feature-named-like-canonical-column",
        "schema",
        "schema.categorical",
        ["label", "video_type"],
        "schema.categorical[0]",
        "canonical column",
    ),
    ("unknown-source", "schema", "schema.source", "bigquery", "schema.source", "'synthetic', 'kuairand' or 'table'"),
    (
        "unknown-log-stat",
        "schema",
        "schema.log_features.0.stat",
        "median",
        "schema.log_features[0].stat",
        "'impressions', 'clicks', 'smoothed_ctr' or 'active_days'",
    ),
]


@pytest.mark.parametrize(("group", "path", "value", "key", "rule"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_parameter_fails_before_any_work(tmp_path, group, path, value, key, rule):
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    params = copy.deepcopy(_base(group))
    _set(params, path, value)
    (root / "conf" / "local" / f"parameters_{group}.yml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ConfigurationError) as info:
        run_pipelines(root, pipeline_names=["data_validation"])
    message = str(info.value)
    assert f"conf/local/parameters_{group}.yml" in message, message
    assert f"key '{key}'" in message, message
    assert rule in message, message
    shown = (
        value[0] if isinstance(value, list) and key.endswith("[0]") else value[1] if isinstance(value, list) else value
    )
    if not isinstance(shown, dict):
        assert f"value {shown!r}" in message, message
    assert _written(root) == [], "the configuration check must fire before any node writes"


def test_typo_lists_the_allowed_keys(tmp_path):
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    params = _base("model_training")
    params["model_training"]["optimizer"]["learnig_rate"] = 0.1
    (root / "conf" / "local" / "parameters_model_training.yml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigurationError) as info:
        run_pipelines(root, pipeline_names=["feature_engineering"])
    message = str(info.value)
    assert "key 'model_training.optimizer.learnig_rate'" in message
    assert "allowed keys:" in message and "learning_rate" in message and "max_epochs" in message


def test_runtime_params_are_checked_and_the_file_of_the_key_named(tmp_path):
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    bad = {"model_training": {"contrastive": {"weight": -1.0}}, "evaluaton": {"eps": 0.1}}
    with pytest.raises(ConfigurationError) as info:
        run_pipelines(root, pipeline_names=["data_validation"], runtime_params=bad)
    message = str(info.value)
    assert "conf/base/parameters_model_training.yml (overridden by runtime --params)" in message, message
    assert "key 'model_training.contrastive.weight'" in message and "greater than or equal to 0" in message
    assert "did you mean 'evaluation'" in message, message  # a mistyped top-level key
    assert _written(root) == []


def test_every_problem_is_listed_at_once(tmp_path):
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    training = _base("model_training")
    _set(training, "model_training.backbone.name", "rnn")
    _set(training, "model_training.contrastive.margin", -1)
    features = _base("feature_engineering")
    _set(features, "feature_engineering.n_buckets", 0)
    (root / "conf" / "local" / "parameters_model_training.yml").write_text(yaml.safe_dump(training))
    (root / "conf" / "local" / "parameters_feature_engineering.yml").write_text(yaml.safe_dump(features))
    with pytest.raises(ConfigurationError) as info:
        run_pipelines(root, pipeline_names=["data_validation"])
    lines = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == 3, lines


def test_good_configuration_of_every_environment_passes():
    for env in ("base", "kuairand", "own_table"):
        params: dict[str, Any] = {}
        for path in sorted((REPO / "conf" / "base").glob("parameters*.yml")):
            params.update(yaml.safe_load(path.read_text()))
        if env != "base":
            for path in sorted((REPO / "conf" / env).glob("parameters*.yml")):
                params.update(yaml.safe_load(path.read_text()))
        validated = check_parameters(params, REPO / "conf", env)
        assert set(validated) == {
            "schema",
            "data_validation",
            "feature_engineering",
            "counterfactual_pairs",
            "model_training",
            "evaluation",
            "compare",
        }


def test_the_env_file_wins_over_base():
    assert find_parameter_file("schema", REPO / "conf", "kuairand") == "conf/kuairand/parameters_schema.yml"
    assert find_parameter_file("model_training", REPO / "conf", "kuairand") == "conf/base/parameters_model_training.yml"


def test_missing_group_is_reported():
    with pytest.raises(ConfigurationError, match="'evaluation' is not defined in any parameters file"):
        params = {}
        for path in sorted((REPO / "conf" / "base").glob("parameters*.yml")):
            params.update(yaml.safe_load(path.read_text()))
        del params["evaluation"]
        check_parameters(params, REPO / "conf", "local")


@pytest.mark.slow
def test_kedro_cli_fails_with_the_same_message(tmp_path):
    """The hook is registered in settings.py, so the real ``kedro run`` checks everything too."""
    root = make_project(tmp_path / "project", local_catalog=SMALL_SYNTHETIC)
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("kedro")),
            "run",
            "--pipelines=data_validation",
            "--params=model_training.backbone.name=transformer",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ConfigurationError" in out and "model_training.backbone.name" in out, out[-3000:]
    assert "parameters_model_training.yml" in out and "'deepfm'" in out, out[-3000:]
    assert _written(root) == []
