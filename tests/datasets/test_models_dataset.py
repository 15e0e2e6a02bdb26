"""ModelCollectionDataset: one sub-folder per model (model.pt state_dict + model.json), swapped in atomically."""

from __future__ import annotations

import json

import pytest
import torch
from kedro.io import DatasetError

from ccss_pipeline.datasets.models import CONFIG, WEIGHTS, ModelCollectionDataset


def _collection(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("dnn__baseline", "dnn__ccss"):
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        for p in net.parameters():
            p.data = torch.randn(p.shape, generator=g)
        out[name] = {
            "config": {
                "variant": name.split("__")[1],
                "contrastive": {"weight": 0.0 if "baseline" in name else 1.5},
                "seed": seed,
            },
            "state_dict": net.state_dict(),
        }
    return out


def _assert_same(loaded: dict, saved: dict) -> None:
    assert sorted(loaded) == sorted(saved)
    for name, entry in saved.items():
        assert loaded[name]["config"] == entry["config"]
        assert list(loaded[name]["state_dict"]) == list(entry["state_dict"])
        for key, value in entry["state_dict"].items():
            got = loaded[name]["state_dict"][key]
            assert got.dtype == value.dtype and torch.equal(got, value), key


def test_round_trip(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "models" / "trained"))
    assert not ds.exists()
    data = _collection(0)
    ds.save(data)
    assert ds.exists()
    _assert_same(ds.load(), data)
    for name in data:
        assert (tmp_path / "models" / "trained" / name / WEIGHTS).is_file()
        assert json.loads((tmp_path / "models" / "trained" / name / CONFIG).read_text()) == data[name]["config"]
    # overwrite with a different collection: only the new models remain
    smaller = {"dnn__ccss": _collection(1)["dnn__ccss"]}
    ds.save(smaller)
    _assert_same(ds.load(), smaller)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["trained"]


def test_weights_are_a_plain_state_dict(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    data = _collection(0)
    ds.save(data)
    raw = torch.load(tmp_path / "trained" / "dnn__ccss" / WEIGHTS, map_location="cpu", weights_only=True)
    assert isinstance(raw, dict) and all(isinstance(v, torch.Tensor) for v in raw.values())
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    net.load_state_dict(raw)  # strict: exactly the module's keys
    assert torch.equal(net[0].weight, data["dnn__ccss"]["state_dict"]["0.weight"])


def test_load_skips_incomplete_and_hidden_folders(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    ds.save(_collection(0))
    (tmp_path / "trained" / "half").mkdir()
    (tmp_path / "trained" / "half" / CONFIG).write_text("{}")
    (tmp_path / "trained" / ".hidden").mkdir()
    assert sorted(ds.load()) == ["dnn__baseline", "dnn__ccss"]


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
    bad["dnn__ccss"]["state_dict"]["extra"] = "not a tensor"
    with pytest.raises(DatasetError):
        ds.save(bad)
    _assert_same(ds.load(), old)
    assert _no_leftovers(tmp_path) == []


def test_first_failed_save_leaves_nothing(tmp_path):
    ds = ModelCollectionDataset(str(tmp_path / "trained"))
    bad = _collection(1)
    bad["dnn__ccss"]["config"]["oops"] = object()  # not JSON-serialisable
    with pytest.raises(DatasetError, match="not JSON serializable"):
        ds.save(bad)
    assert not ds.exists() and list(tmp_path.iterdir()) == []


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
