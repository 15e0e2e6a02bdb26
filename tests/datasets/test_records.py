"""FeatureSpecDataset and ChosenParamsDataset: JSON files handed to nodes as domain objects."""

from __future__ import annotations

import json

import pytest
from kedro.io import DatasetError

from ccss_pipeline.datasets import ChosenParamsDataset, FeatureImportanceDataset, FeatureSpecDataset
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.model.importance import FeatureImportance, WarmupFit
from tests.model.conftest import make_spec

CHOSEN = ChosenParams(
    loss="margin",
    weight=2.5,
    margin=0.01,
    temperature=0.1,
    learning_rate=0.002,
    source="trial 3",
    val_auc=0.78,
    val_wrong_step_share=0.001,
    feasible=True,
    max_violation=0.005,
    study="ccss-dnn-x",
    n_trials=8,
    spec_fingerprint="abc",
)


def test_feature_spec_round_trip_in_the_json_layout(tmp_path):
    spec = make_spec()
    ds = FeatureSpecDataset(str(tmp_path / "spec" / "feature_spec.json"))
    assert not ds.exists()
    ds.save(spec)
    assert ds.load() == spec
    # the bytes kedro_datasets' JSONDataset wrote (indent=2): DVC sees no change for the same spec
    assert (tmp_path / "spec" / "feature_spec.json").read_text() == json.dumps(spec.to_dict(), indent=2)
    assert [p.name for p in (tmp_path / "spec").iterdir()] == ["feature_spec.json"]  # no temporary left


def test_feature_spec_errors_name_the_file(tmp_path):
    path = tmp_path / "feature_spec.json"
    with pytest.raises(DatasetError, match=rf"{path}: not found.*feature_engineering"):
        FeatureSpecDataset(str(path)).load()
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=rf"{path}: cannot be read as JSON"):
        FeatureSpecDataset(str(path)).load()
    path.write_text(json.dumps({"version": -1}))
    with pytest.raises(DatasetError, match=rf"{path}: not a feature spec.*version -1 is not supported"):
        FeatureSpecDataset(str(path)).load()


def test_chosen_params_round_trip(tmp_path):
    ds = ChosenParamsDataset(str(tmp_path / "best_params.json"))
    ds.save({"dnn": CHOSEN})
    loaded = ds.load()
    assert loaded == {"dnn": CHOSEN} and isinstance(loaded["dnn"], ChosenParams)
    assert json.loads((tmp_path / "best_params.json").read_text())["dnn"]["weight"] == 2.5
    assert loaded["dnn"].tuned() == {"weight": 2.5, "margin": 0.01, "temperature": 0.1}
    with pytest.raises(ValueError):  # frozen: the record is what the search chose
        loaded["dnn"].weight = 1.0  # type: ignore[misc]


def test_chosen_params_refuse_an_unknown_or_missing_key(tmp_path):
    path = tmp_path / "best_params.json"
    path.write_text(json.dumps({"dnn": {**CHOSEN.model_dump(), "wieght": 1.0}}))
    with pytest.raises(
        DatasetError,
        match=rf"{path}: 'dnn' is not the search's chosen parameters \(wieght: Extra inputs are not permitted\)",
    ):
        ChosenParamsDataset(str(path)).load()
    path.write_text(json.dumps({"dnn": {k: v for k, v in CHOSEN.model_dump().items() if k != "margin"}}))
    with pytest.raises(DatasetError, match="margin: Field required"):
        ChosenParamsDataset(str(path)).load()
    path.write_text("[]")
    with pytest.raises(DatasetError, match="expected an object of backbones"):
        ChosenParamsDataset(str(path)).load()


def test_feature_importance_round_trip_and_draw_order(tmp_path):
    spec = make_spec()
    directed = [f.name for f in spec.directed]
    record = FeatureImportance(
        q={f.name: 0.1 * (i + 1) for i, f in enumerate(spec.numerical)},
        p={name: 1.0 / len(directed) for name in reversed(directed)},  # stored in another order
        warmup=WarmupFit(backbone="dnn", epochs=2, val_auc=0.7),
        spec_fingerprint=spec.fingerprint,
    )
    ds = FeatureImportanceDataset(str(tmp_path / "feature_importance.json"))
    ds.save(record)
    assert ds.load() == record
    assert (tmp_path / "feature_importance.json").read_text() == json.dumps(record.model_dump(), indent=2)
    first = record.model_copy(update={"p": {**record.p, directed[0]: 0.9}})
    assert first.draw_probabilities(spec)[0] == 0.9  # in the order of spec.directed
    partial = record.model_copy(update={"p": {directed[0]: 1.0}})
    with pytest.raises(ValueError, match=rf"no draw probability for directed feature\(s\) \['{directed[1]}'"):
        partial.draw_probabilities(spec)
    (tmp_path / "feature_importance.json").write_text(json.dumps({"q": {}}))
    with pytest.raises(DatasetError, match="not the feature importances.*p: Field required"):
        ds.load()


def test_validation_report_is_written_as_json_and_markdown_and_loads_as_one_report(tmp_path):
    from ccss_pipeline.data.validation import Failure, TableStats, ValidationReport
    from ccss_pipeline.datasets import ValidationReportDataset

    report = ValidationReport(
        success=False,
        failures=[Failure("log.csv", "log", "clicked", "label in {0, 1}", 2, [2, "yes"])],
        tables={"log": TableStats("log.csv", "log", 10, 4)},
        title="Data validation",
    )
    ds = ValidationReportDataset(str(tmp_path / "raw_validation.json"))
    ds.save(report)
    assert (tmp_path / "raw_validation.md").read_text() == report.to_markdown()
    saved = json.loads((tmp_path / "raw_validation.json").read_text())
    assert saved["error_message"] == report.error_message() and saved == report.to_dict()
    loaded = ds.load()
    assert loaded.to_dict() == report.to_dict() and loaded.error_message() == report.error_message()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw_validation.json", "raw_validation.md"]
    with pytest.raises(DatasetError, match="must end in .json"):
        ValidationReportDataset(str(tmp_path / "report.md"))
