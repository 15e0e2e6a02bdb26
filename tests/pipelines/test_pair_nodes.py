"""The counterfactual_pairs nodes called directly (no Kedro session): settings reach the work."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import PairsConfig, TrainingConfig
from ccss_pipeline.lineage import stamp
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.pipelines.counterfactual_pairs import nodes
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ModelInputs
from tests.model.conftest import make_inputs, make_spec


def _table(inputs: ModelInputs, spec, path) -> ParquetTable:
    """The split as the catalog hands it to the node: a lazy parquet table stamped for ``spec``."""
    frame = pd.DataFrame({LABEL_COLUMN: inputs.label, GROUP_COLUMN: np.arange(len(inputs))})
    for j, c in enumerate(spec.categorical):
        frame[c.column] = inputs.cat[:, j]
    for k, f in enumerate(spec.numerical):
        frame[f.dense_column], frame[f.bucket_column] = inputs.dense[:, k], inputs.bucket[:, k]
    stamp(frame, spec).to_parquet(path, index=False)
    return ParquetTable(path)


def test_the_shapley_batch_size_reaches_the_scorer(monkeypatch, tmp_path):
    """``counterfactual_pairs.shapley.batch_size`` used to change nothing (issue 15)."""
    spec = make_spec()
    seen = []
    real = nodes.logit_fn

    def spy(model, device=None, batch_size=16384):
        seen.append(batch_size)
        return real(model, device, batch_size)

    monkeypatch.setattr(nodes, "logit_fn", spy)
    pairs = PairsConfig.model_validate(
        {"warmup_epochs": 1, "shapley": {"n_samples": 50, "n_permutations": 1, "batch_size": 128}}
    )
    training = TrainingConfig.model_validate(
        {"backbone": {"hidden_units": [8], "embedding_dim": 4}, "optimizer": {"batch_size": 256, "device": "cpu"}}
    )
    out = nodes.estimate_feature_importance(
        _table(make_inputs(spec, 600, seed=1), spec, tmp_path / "train.parquet"),
        _table(make_inputs(spec, 200, seed=2), spec, tmp_path / "valid.parquet"),
        spec,
        pairs,
        training,
    )
    assert seen == [128]
    assert set(out.p) == {f.name for f in spec.directed} and out.spec_fingerprint == spec.fingerprint
