"""Issue 28 ("reliability round 3"), items 7-10: configurations and hand-edited files that used to run to
a wrong end, or crash with an error naming no key, are refused (or accepted) by the configuration check.

Each test failed on the code before issue 28: ``what_if.rows: []`` replaced what_if.csv by an empty
table after a misleading write error; a categorical named ``row`` was silently replaced by each row's
position; ``timestamp_min: 2000-01-01T00:00:00Z`` crashed the check with a bare TypeError;
``timestamp_format: '%Q'`` failed in the gate with a raw ValueError; a NaN λ in best_params.json trained.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kedro.io import DatasetError

from ccss_pipeline import spec as spec_module
from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data import interactions
from ccss_pipeline.datasets import ChosenParamsDataset
from ccss_pipeline.hooks import ConfigurationError, check_parameters
from tests.kedro_project import REPO


def _base_params() -> dict[str, Any]:
    params: dict[str, Any] = {}
    for path in sorted((REPO / "conf" / "base").glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()))
    return params


def _message(params: dict[str, Any]) -> str:
    with pytest.raises(ConfigurationError) as info:
        check_parameters(params, REPO / "conf", "local")
    return str(info.value)


# ------------------------------------------------------------------------------ 7. what_if.rows: []
def test_an_empty_what_if_row_list_is_refused_naming_the_key():
    params = _base_params()
    params["evaluation"].setdefault("what_if", {})["rows"] = []
    message = _message(params)
    assert "key 'evaluation.what_if.rows'" in message, message
    assert "empty list" in message and "null for a seeded sample" in message, message


def test_a_what_if_row_list_or_null_is_still_accepted():
    params = _base_params()
    for rows in ([0, 3], None):
        params["evaluation"].setdefault("what_if", {})["rows"] = rows
        assert check_parameters(params, REPO / "conf", "local")["evaluation"].what_if.rows == rows


# ------------------------------------------------------------------------------ 8. reserved names
@pytest.mark.parametrize(
    ("edit", "key", "name"),
    [
        (lambda s: s["categorical"].append("row"), "schema.categorical[3]", "row"),
        (lambda s: s["categorical"].append("split"), "schema.categorical[3]", "split"),
        (lambda s: s["numerical"].append({"name": "event_ts"}), "schema.numerical[7].name", "event_ts"),
        (
            lambda s: s["log_features"].__setitem__(0, {**s["log_features"][0], "name": "group_id"}),
            "schema.log_features[0].name",
            "group_id",
        ),
        (lambda s: s["categorical"].append("__ccss_pos"), "schema.categorical[3]", "__ccss_pos"),
    ],
    ids=["row", "split", "event_ts", "group_id-log-feature", "engine-temporary"],
)
def test_a_feature_named_like_an_internal_column_is_refused(edit, key, name):
    params = _base_params()
    edit(params["schema"])
    message = _message(params)
    assert f"conf/base/parameters_schema.yml: key '{key}'" in message, message
    assert f"{name!r} is a canonical column the pipeline adds itself" in message, message
    assert "user, item, label, event_ts, group_id, oracle_prob, split, row" in message, "the names are listed"


def test_the_library_refuses_a_reserved_name_too():
    """The rule lives on the typed model: plain-library users (no Kedro) get it as well."""
    raw = {**_base_params()["schema"], "categorical": ["tag", "row"]}
    with pytest.raises(ValueError, match=r"categorical\.1\n.*'row' is a canonical column"):
        SchemaConfig.model_validate(raw)


def test_the_reserved_names_are_the_pipelines_own_columns():
    """The list cannot drift from the columns the code adds (config.py may not import spec.py)."""
    from ccss_pipeline.config import RESERVED_COLUMNS

    own = {
        spec_module.LABEL_COLUMN,
        spec_module.GROUP_COLUMN,
        spec_module.TIME_COLUMN,
        spec_module.ORACLE_COLUMN,
        spec_module.SPLIT_COLUMN,
        interactions.ROW_COLUMN,
        interactions.USER,
        interactions.ITEM,
    }
    assert own == set(RESERVED_COLUMNS)


# ------------------------------------------------------------------------ 9. timezones in the bounds
@pytest.mark.parametrize(
    "bounds",
    [{"timestamp_min": "2000-01-01T00:00:00Z"}, {"timestamp_max": "2100-01-01T02:00:00+02:00"}],
    ids=["aware-min-naive-max", "naive-min-aware-max"],
)
def test_timestamp_bounds_with_a_timezone_are_accepted_as_utc(bounds):
    """One bound with a timezone beside the other without (the default): they used to be compared as
    pandas Timestamps, a bare TypeError out of the configuration check."""
    params = _base_params()
    params["data_validation"].update(bounds)
    validated = check_parameters(params, REPO / "conf", "local")["data_validation"]
    assert {key: getattr(validated, key) for key in bounds} == bounds
    from ccss_pipeline.data.validation.suites import _epoch_ms_bound

    assert _epoch_ms_bound("2000-01-01T00:00:00Z") == _epoch_ms_bound("2000-01-01")  # the gate reads UTC


def test_reversed_bounds_are_still_refused_across_timezones():
    """23:00 at UTC-02:00 is 01:00 UTC the next day: after a naive bound of 00:30 that day."""
    with pytest.raises(ValueError, match="must be before timestamp_max"):
        ValidationConfig(timestamp_min="2020-01-01T23:00:00-02:00", timestamp_max="2020-01-02T00:30:00")
    params = _base_params()
    params["data_validation"].update(timestamp_min="2100-01-01T00:00:00Z", timestamp_max="2000-01-01")
    message = _message(params)
    assert "key 'data_validation'" in message and "must be before timestamp_max" in message, message


# ------------------------------------------------------------------------------- 10. weak items
@pytest.mark.parametrize(
    ("fmt", "rule"),
    [("%Q", "'Q' is a bad directive"), ("%Y %Y", "cannot be used"), ("day-month-year", "has no % directive")],
    ids=["bad-directive", "repeated-directive", "no-directive"],
)
def test_a_timestamp_format_the_parser_cannot_use_is_refused_naming_the_key(fmt, rule):
    params = _base_params()
    params["schema"].update(timestamp_unit="datetime", timestamp_format=fmt)
    message = _message(params)
    assert "key 'schema.timestamp_format'" in message and rule in message, message
    assert "e.g. '%d/%m/%Y %H:%M'" in message, message


def test_a_usable_timestamp_format_is_accepted():
    raw = {**_base_params()["schema"], "timestamp_unit": "datetime", "timestamp_format": "%d/%m/%Y %H:%M"}
    assert SchemaConfig.model_validate(raw).timestamp_format == "%d/%m/%Y %H:%M"


def _chosen(**changes: Any) -> dict[str, Any]:
    return {
        "loss": "margin",
        "weight": 1.5,
        "margin": 0.02,
        "temperature": 0.1,
        "learning_rate": 0.002,
        "source": "trial 1",
        "val_auc": 0.7,
        "val_wrong_step_share": 0.0,
        "feasible": True,
        "max_violation": 0.005,
        "study": "ccss-dnn",
        "n_trials": 2,
        **changes,
    }


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("weight", float("nan"), "finite number"),
        ("margin", float("inf"), "finite number"),
        ("weight", -1.0, "greater than or equal to 0"),
        ("temperature", 0.0, "greater than 0"),
        ("pair_fraction", 1.5, "less than or equal to 1"),
    ],
    ids=["nan-weight", "inf-margin", "negative-weight", "zero-temperature", "pair-fraction-above-one"],
)
def test_a_hand_edited_best_params_with_an_unusable_value_is_refused(tmp_path, field, value, rule):
    path = tmp_path / "best_params.json"
    path.write_text(json.dumps({"dnn": _chosen(**{field: value})}))  # NaN and Infinity as Python writes them
    with pytest.raises(DatasetError) as info:
        ChosenParamsDataset(str(path)).load()
    message = str(info.value)
    assert str(path) in message and field in message and rule in message, message


def test_a_sound_best_params_still_loads(tmp_path):
    path = tmp_path / "best_params.json"
    path.write_text(json.dumps({"dnn": _chosen(pair_fraction=0.5)}))
    assert ChosenParamsDataset(str(path)).load()["dnn"].weight == 1.5
