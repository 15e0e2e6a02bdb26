"""ModelCollectionDataset: one sub-folder per model (model.pt state_dict + model.json), swapped in atomically;
loads and saves TrainedModel records."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from kedro.io import DatasetError

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig
from ccss_pipeline.datasets.models import CONFIG, WEIGHTS, ModelCollectionDataset
from ccss_pipeline.model.persistence import TrainedModel


def _collection(seed: int) -> dict[str, TrainedModel]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("dnn__baseline__seed0", "dnn__ccss__seed0"):
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        for p in net.parameters():
            p.data = torch.randn(p.shape, generator=g)
        out[name] = TrainedModel(
            name=name,
            backbone=BackboneConfig(),
            variant=name.split("__")[1],
            seed=seed,
            spec_fingerprint="abc",
            state_dict=net.state_dict(),
            contrastive=ContrastiveConfig(weight=0.0 if "baseline" in name else 1.5),
            best_epoch=3,
        )
    return out


def _assert_same(loaded: dict, saved: dict) -> None:
    assert sorted(loaded) == sorted(saved)
    for name, model in saved.items():
        got = loaded[name]
        assert isinstance(got, TrainedModel) and got.config() == model.config() and got.name == name
        assert got.contrastive == model.contrastive and got.backbone == model.backbone
        assert list(got.state_dict) == list(model.state_dict)
        for key, value in model.state_dict.items():
            assert got.state_dict[key].dtype == value.dtype and torch.equal(got.state_dict[key], value), key


def test_round_trip(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "models" / "trained"))
    assert not ds.exists()
    data = _collection(0)
    ds.save(data)
    assert ds.exists()
    _assert_same(ds.load(), data)
    for name in data:
        assert (tmp_path / "models" / "trained" / name / WEIGHTS).is_file()
        assert json.loads((tmp_path / "models" / "trained" / name / CONFIG).read_text()) == data[name].config()
    # overwrite with a different collection: only the new models remain
    smaller = {"dnn__ccss__seed0": _collection(1)["dnn__ccss__seed0"]}
    ds.save(smaller)
    _assert_same(ds.load(), smaller)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["trained"]


def test_weights_are_a_plain_state_dict(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    data = _collection(0)
    ds.save(data)
    raw = torch.load(tmp_path / "trained" / "dnn__ccss__seed0" / WEIGHTS, map_location="cpu", weights_only=True)
    assert isinstance(raw, dict) and all(isinstance(v, torch.Tensor) for v in raw.values())
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    net.load_state_dict(raw)  # strict: exactly the module's keys
    assert torch.equal(net[0].weight, data["dnn__ccss__seed0"].state_dict["0.weight"])


def test_load_skips_incomplete_and_hidden_folders(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    ds.save(_collection(0))
    (tmp_path / "trained" / "half").mkdir()
    (tmp_path / "trained" / "half" / CONFIG).write_text("{}")
    (tmp_path / "trained" / ".hidden").mkdir()
    assert sorted(ds.load()) == ["dnn__baseline__seed0", "dnn__ccss__seed0"]


def _no_leftovers(parent):
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_failed_save_keeps_the_previous_collection(tmp_path, monkeypatch):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    old = _collection(0)
    ds.save(old)

    calls = {"n": 0}
    real_save = torch.save

    def flaky_save(obj, path, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real_save(obj, path, *a, **kw)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(DatasetError, match="disk full"):
        ds.save(_collection(1))
    monkeypatch.undo()
    _assert_same(ds.load(), old)
    assert _no_leftovers(tmp_path) == []


def test_failed_save_of_an_unsaveable_entry_keeps_the_previous_collection(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    old = _collection(0)
    ds.save(old)
    bad = _collection(1)
    bad["dnn__ccss__seed0"] = replace(bad["dnn__ccss__seed0"], state_dict={"extra": "not a tensor"})
    with pytest.raises(DatasetError):
        ds.save(bad)
    _assert_same(ds.load(), old)
    assert _no_leftovers(tmp_path) == []


def test_first_failed_save_leaves_nothing(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    bad = _collection(1)
    bad["dnn__ccss__seed0"] = replace(bad["dnn__ccss__seed0"], best_val_auc=object())  # not JSON-serialisable
    with pytest.raises(DatasetError, match="not JSON serializable"):
        ds.save(bad)
    assert not ds.exists() and list(tmp_path.iterdir()) == []


def test_a_model_json_that_is_not_a_record_fails_naming_the_file(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    ds.save(_collection(0))
    bad = tmp_path / "trained" / "dnn__ccss__seed0" / CONFIG
    bad.write_text(json.dumps({"variant": "ccss"}))  # no backbone settings
    with pytest.raises(DatasetError, match=rf"{bad}: not a trained-model record"):
        ds.load()


def test_variant_and_seed_come_from_the_folder_name_when_model_json_lacks_them(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    ds.save(_collection(0))
    path = tmp_path / "trained" / "dnn__ccss__seed0" / CONFIG
    path.write_text(json.dumps({"backbone": BackboneConfig(name="dcn_v2").model_dump(), "spec_hash": "abc"}))
    got = ds.load()["dnn__ccss__seed0"]
    assert (got.backbone_name, got.variant, got.seed, got.spec_fingerprint) == ("dcn_v2", "ccss", 0, "abc")


def test_load_of_a_missing_folder_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "trained"
    with pytest.raises(DatasetError, match=str(path)):
        ModelCollectionDataset(str(path)).load()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=str(empty)):
        ModelCollectionDataset(str(empty)).load()


def test_describe_names_the_path(tmp_path):
    assert str(tmp_path / "m") in str(ModelCollectionDataset(str(tmp_path / "m")))
