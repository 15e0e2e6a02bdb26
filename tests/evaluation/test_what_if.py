"""What-if curves (issue 16): the library function on hand-built and real models, and the pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit, logit

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.evaluation.raw_grid import raw_grid
from ccss_pipeline.evaluation.what_if import COLUMNS, plot_what_if, what_if, what_if_table
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.scoring import predict_proba
from ccss_pipeline.spec import ModelInputs
from tests.model.conftest import make_inputs, make_spec


def _monotone_scorer(cat, dense, bucket):
    """Rises with 'pos' (dense and bucket), falls with 'neg'; a hand-built monotone model."""
    return 1 / (1 + np.exp(-(dense[:, 0] + 0.1 * bucket[:, 0] - dense[:, 1])))


def test_a_monotone_model_gives_monotone_curves_encoded_as_at_inference():
    spec = make_spec()
    rows = make_inputs(spec, 7, seed=3)
    values = raw_grid(spec.numerical[0], 40)
    up = what_if(_monotone_scorer, spec, rows, "pos", values)
    down = what_if(_monotone_scorer, spec, rows, "neg", raw_grid(spec.numerical[1], 40))
    assert up.shape == (7, values.size)
    assert (np.diff(up, axis=1) >= 0).all() and (np.diff(down, axis=1) <= 0).all()
    dense_v, bucket_v = encode_numerical(values, spec.numerical[0])
    expected = 1 / (1 + np.exp(-(dense_v[None, :] + 0.1 * bucket_v[None, :] - rows.dense[:, [1]])))
    np.testing.assert_allclose(up, expected, rtol=1e-6)


def test_what_if_of_a_torch_model_equals_scoring_the_moved_rows():
    spec = make_spec()
    torch.manual_seed(0)
    model = CTRModel(spec, BackboneConfig(hidden_units=[8], embedding_dim=4, embedding_init_std=0.5)).eval()
    rows = make_inputs(spec, 5, seed=1)
    values = np.array([-1.0, 0.0, 2.5])
    got = what_if(model, spec, rows, "pos", values)
    for j, v in enumerate(values):
        d, b = encode_numerical(np.full(len(rows), v), spec.numerical[0])
        moved = ModelInputs(
            cat=rows.cat, dense=rows.dense.copy(), bucket=rows.bucket.copy(), label=rows.label, group=rows.group
        )
        moved.dense[:, 0], moved.bucket[:, 0] = d, b
        np.testing.assert_allclose(got[:, j], predict_proba(model, moved), rtol=1e-6, atol=1e-7)


def test_what_if_of_a_recalibrated_model_is_its_served_probability_with_the_same_directions():
    """A model carrying a recalibration gives its recalibrated probability on the what-if curve — the
    map of the raw curve — and every step of the curve keeps its sign."""
    spec = make_spec()
    torch.manual_seed(3)
    raw = CTRModel(spec, BackboneConfig(hidden_units=[8], embedding_dim=4, embedding_init_std=0.5)).eval()
    recalibration = Recalibration("platt", 2.0, -0.5)
    served = CTRModel(spec, raw.cfg, recalibration).eval()
    served.load_state_dict(raw.state_dict())
    rows = make_inputs(spec, 6, seed=4)
    values = raw_grid(spec.numerical[0], 30)
    before, after = what_if(raw, spec, rows, "pos", values), what_if(served, spec, rows, "pos", values)
    np.testing.assert_allclose(after, expit(recalibration.apply(logit(before))), rtol=0, atol=1e-6)
    assert np.abs(after - before).max() > 0.05
    np.testing.assert_array_equal(np.sign(np.diff(after, axis=1)), np.sign(np.diff(before, axis=1)))


def test_an_unknown_feature_is_named():
    spec = make_spec()
    with pytest.raises(KeyError, match="'nope' is not a numerical feature"):
        what_if(_monotone_scorer, spec, make_inputs(spec, 2), "nope", [0.0])


def test_table_and_plot_cover_every_directed_feature_and_model():
    spec = make_spec()
    rows = make_inputs(spec, 3, seed=2)
    table = what_if_table({"a": _monotone_scorer, "b": _monotone_scorer}, spec, rows, [10, 20, 30], levels=12)
    assert list(table.columns) == COLUMNS
    assert set(table["feature"]) == {f.name for f in spec.directed} and set(table["row"]) == {10, 20, 30}
    fig = plot_what_if(table, 20, label_name="defaulted")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(spec.directed)
    assert all(ax.get_ylabel() == "predicted P(defaulted)" and len(ax.lines) == 2 for ax in panels)


@pytest.mark.slow
def test_the_what_if_pipeline_writes_a_table_and_a_plot_per_row(trained_project):
    from tests.kedro_project import run_pipelines
    from tests.support.trained_project import is_png

    root = trained_project
    run_pipelines(
        root, pipeline_names=["what_if"], runtime_params={"evaluation": {"what_if": {"rows": [0, 3], "levels": 10}}}
    )
    table = pd.read_csv(root / "data" / "08_reporting" / "what_if.csv")
    assert set(table["row"]) == {0, 3} and {"dnn ccss", "dnn baseline"} <= set(table["model"])
    assert table["probability"].between(0, 1).all()
    plots = root / "data" / "08_reporting" / "plots" / "what_if"
    assert sorted(p.name for p in plots.glob("*.png")) == ["row_0.png", "row_3.png"]
    assert all(is_png(p) for p in plots.glob("*.png"))
