"""Final fits on DistributedDataParallel workers started by torch's elastic launcher (issue 14).

Two gloo processes on CPU against one process: the same metrics (the global batch is kept, so each
step sees the same rows), rank 0's checkpoint resumes, a streamed split is shared by row groups, and
a failing worker surfaces as one clear error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, DistributedConfig, OptimizerConfig
from ccss_pipeline.model.distributed import DistributedTrainingError, Fit, FitData, run_fits
from ccss_pipeline.model.scoring import predict_logits, safe_auc
from ccss_pipeline.model.streaming import ParquetModelInput
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN
from tests.model.conftest import make_inputs, make_spec

pytestmark = pytest.mark.slow  # each launch spawns two fresh interpreters (~5-10 s)

ONE, TWO = DistributedConfig(nproc_per_node=1), DistributedConfig(nproc_per_node=2, timeout_s=120)
BACKBONE = BackboneConfig(hidden_units=[16], embedding_dim=4)


@pytest.fixture(scope="module")
def data() -> FitData:
    spec = make_spec()
    train, valid = make_inputs(spec, 6_000, seed=1), make_inputs(spec, 1_500, seed=2)
    p = np.ones(len(spec.directed)) / len(spec.directed)
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=0, move="centre")
    return FitData(spec, train, valid, pairs, p, "centre", 4_096)


def _fits(max_epochs: int, checkpoint_root=None) -> list[Fit]:
    optimizer = OptimizerConfig(batch_size=256, max_epochs=max_epochs, patience=5, device="cpu")
    return [
        Fit(
            f"{variant}",
            BACKBONE,
            ContrastiveConfig(weight=w),
            optimizer,
            with_pairs=w > 0,
            checkpoint_dir=None if checkpoint_root is None else checkpoint_root / variant,
        )
        for variant, w in (("baseline", 0.0), ("ccss", 1.0))
    ]


@pytest.fixture(scope="module")
def two_straight(data) -> dict:
    """Three epochs on two workers, uninterrupted: compared with one process, and with a resumed run."""
    return run_fits(_fits(3), data, TWO)


def test_two_processes_match_one(data, two_straight):
    one = run_fits(_fits(3), data, ONE)
    two = two_straight
    for key in ("baseline", "ccss"):
        assert abs(two[key].best_val_auc - one[key].best_val_auc) < 0.005, key
        assert [h.get("world_size", 1) for h in two[key].history] == [2, 2, 2]
        assert np.allclose([h["loss"] for h in two[key].history], [h["loss"] for h in one[key].history], atol=1e-3)
        # the weights came back from the workers: they score validation as the workers did
        returned = safe_auc(data.valid.label, predict_logits(two[key].model, data.valid))
        assert returned == pytest.approx(two[key].best_val_auc, abs=1e-12)


def test_rank_zero_checkpoints_and_a_longer_run_resumes_from_them(data, two_straight, tmp_path):
    fits = _fits(2, tmp_path)
    run_fits(fits, data, TWO)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline", "ccss"]
    assert [p.name for p in (tmp_path / "ccss").iterdir()] == ["checkpoint.pt"]  # one writer, no temporaries
    resumed = run_fits(_fits(3, tmp_path), data, TWO)
    straight = two_straight  # the same three epochs from scratch, never stopped
    for key in ("baseline", "ccss"):
        assert len(resumed[key].history) == 3
        assert resumed[key].history[-1]["val_auc"] == pytest.approx(straight[key].history[-1]["val_auc"], abs=1e-9)


def test_a_streamed_split_is_shared_by_row_groups(data, tmp_path):
    spec, train = data.spec, data.train
    frame = pd.DataFrame({LABEL_COLUMN: train.label, GROUP_COLUMN: np.arange(len(train))})
    for j, c in enumerate(spec.categorical):
        frame[c.column] = train.cat[:, j]
    for k, f in enumerate(spec.numerical):
        frame[f.dense_column], frame[f.bucket_column] = train.dense[:, k], train.bucket[:, k]
    frame.to_parquet(tmp_path / "train.parquet", row_group_size=500, index=False)
    lazy = ParquetModelInput(ParquetTable(tmp_path / "train.parquet"), spec)
    streamed = FitData(spec, lazy, data.valid, None, data.shapley_p, "centre", 2_048)
    one = run_fits(_fits(3), streamed, ONE)
    two = run_fits(_fits(3), streamed, TWO)
    for key in ("baseline", "ccss"):
        assert abs(two[key].best_val_auc - one[key].best_val_auc) < 0.02, (
            key,
            two[key].best_val_auc,
            one[key].best_val_auc,
        )


def test_a_failing_worker_is_one_clear_error(data):
    broken = FitData(data.spec, data.train, data.valid, None, None, "centre", 4_096)
    fit = Fit(
        "ccss",
        BACKBONE,
        ContrastiveConfig(weight=1.0),
        OptimizerConfig(batch_size=256, max_epochs=1, device="cpu"),
        with_pairs=True,
        redraw_pairs_each_epoch=True,
    )
    with pytest.raises(DistributedTrainingError, match="distributed training failed"):
        run_fits([fit], broken, TWO)
