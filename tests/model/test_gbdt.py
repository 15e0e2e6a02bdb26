"""LightGBM with monotone constraints (``model/gbdt.py``): monotone by construction, measured by the
project's own raw-grid sweep, against the same model without the constraints on a table whose true
curve wiggles the wrong way (``tests/support/monotone_table.py``)."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightgbm", reason='LightGBM is in the optional extra "compare": pip install -e ".[compare]"')

from ccss_pipeline.config import SearchRange
from ccss_pipeline.evaluation.raw_grid import raw_grid_report  # noqa: E402
from ccss_pipeline.lineage import StaleArtifactError  # noqa: E402
from ccss_pipeline.model.gbdt import (  # noqa: E402
    GBDTConfig,
    GBDTSearchSpace,
    InputLayout,
    MonotoneGBDT,
    fit_gbdt,
    tune_gbdt,
)
from ccss_pipeline.model.peer_tuning import StudyPlan  # noqa: E402
from ccss_pipeline.model.scoring import safe_auc  # noqa: E402
from ccss_pipeline.spec import FeatureSpec  # noqa: E402
from tests.support.monotone_table import splits  # noqa: E402

GRID_LEVELS, GRID_ROWS = 200, 500


@pytest.fixture(autouse=True)
def _threads():  # overrides tests/model/conftest.py's: one thread, the machine is shared
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return splits()


@pytest.fixture(scope="module")
def constrained(data):
    spec, train, valid, _ = data
    return fit_gbdt(spec, train, valid, GBDTConfig(num_threads=1))


@pytest.fixture(scope="module")
def unconstrained(data):
    spec, train, valid, _ = data
    return fit_gbdt(spec, train, valid, GBDTConfig(num_threads=1, monotone=False))


def _sweep(model, data):
    spec, _, _, test = data
    return raw_grid_report(model, test, spec, levels=GRID_LEVELS, rows=GRID_ROWS, seed=0)


def test_constrained_gbdt_reads_exactly_zero_on_the_raw_grid(data, constrained, unconstrained):
    """Exactly 0 wrong steps and 0 wrong edge steps (at the sweep's ε = 1e-6), where the same model
    without the constraints goes the wrong way on thousands of steps: the measurement can fail."""
    free = _sweep(unconstrained, data)
    assert free.pooled["n_wrong_steps"] > 1000, free.per_feature  # measured: 15,792 of 298,500 (5.3%)
    assert free.pooled["wrong_step_share"] > 0.01

    result = _sweep(constrained, data)
    assert result.pooled["n_steps"] > 0 and result.pooled["edge_pairs"] > 0
    assert result.pooled["n_wrong_steps"] == 0, result.per_feature
    assert result.pooled["edge_wrong"] == 0, result.per_edge
    assert result.pooled["monotone_row_share"] == 1.0
    assert result.pooled["mean_wrong_mass"] == 0.0


def test_missing_values_never_reach_lightgbm_as_nan(data):
    """A constrained column holding NaN makes LightGBM's ``advanced`` method non-monotone (module
    docstring): a missing value is dense 0 plus an unconstrained flag, also when dense itself is NaN."""
    spec = data[0]
    layout = InputLayout.of(spec)
    cat = np.zeros((3, 2), np.int64)
    dense = np.array([[0.5, 1.0, 2.0, 0.0], [0.0, np.nan, 1.0, 0.0], [0.2, 0.3, 0.4, 0.5]], np.float32)
    bucket = np.zeros((3, 4), np.int64)
    bucket[1, 0] = spec.numerical[0].missing_bucket
    x = layout.matrix(cat, dense, bucket)
    assert np.isfinite(x).all()
    assert layout.feature_names[2:6] == ["num__pos", "num__neg", "num__free", "num__flat"]
    assert x[1, 2:6].tolist() == [0.0, 0.0, 1.0, 0.0]  # pos missing (bucket), neg missing (NaN)
    assert x[:, 6:].tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert layout.constraints == [0, 0, 1, -1, 0, 1, 0, 0, 0, 0]


def test_auc_on_a_learnable_table(data, constrained, unconstrained):
    spec, _, valid, test = data
    auc = safe_auc(test.label, constrained.predict_inputs(test))
    free = safe_auc(test.label, unconstrained.predict_inputs(test))
    oracle = safe_auc(test.label, test.oracle)
    assert auc > 0.6 and free > 0.6  # measured: 0.814 (constrained), 0.811 (free), oracle 0.832
    assert auc > oracle - 0.05
    assert constrained.val_auc == pytest.approx(safe_auc(valid.label, constrained.predict_inputs(valid)))
    assert 1 <= constrained.best_iteration <= constrained.config.n_estimators


def test_save_load_gives_identical_predictions(tmp_path, data, constrained):
    spec, _, _, test = data
    folder = constrained.save(tmp_path / "gbdt")
    assert sorted(p.name for p in folder.iterdir()) == ["gbdt.json", "model.txt"]  # text and JSON, no pickle
    meta = json.loads((folder / "gbdt.json").read_text())
    assert meta["config"]["monotone_constraints_method"] == "advanced"
    loaded = MonotoneGBDT.load(folder, spec)
    assert loaded.config == constrained.config and loaded.best_iteration == constrained.best_iteration
    assert np.array_equal(loaded.predict_inputs(test), constrained.predict_inputs(test))
    other = FeatureSpec(categorical=spec.categorical, numerical=spec.numerical, source="another")
    with pytest.raises(StaleArtifactError, match="fit it again"):
        MonotoneGBDT.load(folder, other)


def test_fit_is_deterministic(data, constrained):
    spec, train, valid, test = data
    again = fit_gbdt(spec, train, valid, GBDTConfig(num_threads=1))
    assert again.best_iteration == constrained.best_iteration
    assert np.array_equal(again.predict_inputs(test), constrained.predict_inputs(test))


def test_tuning_keeps_the_best_validation_auc_and_is_seeded(data):
    spec, train, valid, _ = data
    base = GBDTConfig(num_threads=1, n_estimators=60, early_stopping_rounds=10)
    space = GBDTSearchSpace(num_leaves=SearchRange(low=4, high=31))
    first = tune_gbdt(spec, train, valid, StudyPlan(n_trials=3, n_startup_trials=2), base=base, space=space)
    second = tune_gbdt(spec, train, valid, StudyPlan(n_trials=3, n_startup_trials=2), base=base, space=space)
    values = [t.value for t in first.study.trials]
    assert len(values) == 3 and first.model.val_auc == max(values)
    assert [t.params for t in first.study.trials] == [t.params for t in second.study.trials]
    assert first.config == first.model.config and 4 <= first.config.num_leaves <= 31
    assert first.config.monotone
    assert first.model.booster.params["monotone_constraints"] == [0, 0, 1, -1, 0, 1, 0, 0, 0, 0]


def test_config_is_typed():
    with pytest.raises(ValueError):
        GBDTConfig(monotone_constraints_method="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        GBDTConfig(num_leaves=1)
    with pytest.raises(ValueError):
        SearchRange(low=0.0, high=1.0)  # log scale needs low > 0


def _top_level_imports(module) -> set[str]:
    """Modules a file imports when it is imported (``if TYPE_CHECKING:`` blocks and functions left out)."""
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_modules_import_without_the_extra_and_name_it_when_used(monkeypatch, data):
    """Neither module imports ``lightgbm``/``monotonicnetworks`` at import time; using either model
    without them says which extra to install."""
    from ccss_pipeline.model import gbdt, monotone_net

    for module in (gbdt, monotone_net):
        assert not _top_level_imports(module) & {"lightgbm", "monotonicnetworks", "optuna"}, module.__name__
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # an import of it now raises ImportError
    monkeypatch.setitem(sys.modules, "monotonicnetworks", None)
    spec, train, valid, _ = data
    with pytest.raises(ImportError, match=re.escape('pip install -e ".[compare]"')):
        fit_gbdt(spec, train, valid)
    with pytest.raises(ImportError, match=re.escape('pip install -e ".[compare]"')):
        monotone_net.MonotoneNet(spec)
