"""Training data streamed from parquet a row group at a time (model.streaming; issue 14)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.model import streaming
from ccss_pipeline.model.streaming import ParquetModelInput, shuffled_batches
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.model.trainer import train_model
from ccss_pipeline.model.training_data import InMemoryData, training_data
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, FeatureSpec, ModelInputs
from tests.model.conftest import make_inputs, make_spec


def _write(inputs: ModelInputs, spec: FeatureSpec, path, row_group_rows: int) -> ParquetModelInput:
    frame = pd.DataFrame({LABEL_COLUMN: inputs.label, GROUP_COLUMN: np.arange(len(inputs))})
    for j, c in enumerate(spec.categorical):
        frame[c.column] = inputs.cat[:, j]
    for k, f in enumerate(spec.numerical):
        frame[f.dense_column] = inputs.dense[:, k]
        frame[f.bucket_column] = inputs.bucket[:, k]
    frame.to_parquet(path, row_group_size=row_group_rows, index=False)
    return ParquetModelInput(ParquetTable(path), spec)


@pytest.fixture(scope="module")
def spec() -> FeatureSpec:
    return make_spec()


@pytest.fixture
def table(spec, tmp_path) -> ParquetModelInput:
    return _write(make_inputs(spec, 5_000, seed=1), spec, tmp_path / "train.parquet", row_group_rows=700)


def test_an_epoch_visits_every_row_once_in_a_seeded_order(table):
    batches = list(shuffled_batches(table, batch_size=256, seed=3, epoch=1, buffer_rows=1_500))
    ids = np.concatenate([b.group for b in batches])
    assert len(table) == 5_000 and table.row_group_rows[0] == 700
    assert np.array_equal(np.sort(ids), np.arange(5_000))  # every row exactly once
    assert all(len(b) == 256 for b in batches[:-1]) and 0 < len(batches[-1]) <= 256 * 2
    again = np.concatenate([b.group for b in shuffled_batches(table, 256, seed=3, epoch=1, buffer_rows=1_500)])
    other = np.concatenate([b.group for b in shuffled_batches(table, 256, seed=3, epoch=2, buffer_rows=1_500)])
    assert np.array_equal(ids, again) and not np.array_equal(ids, other)
    # rows of different row groups mix within a batch (the buffer shuffles across groups)
    assert len(np.unique(batches[0].group // 700)) > 1


def test_the_buffer_bounds_what_is_held(table, monkeypatch):
    held = []
    concat = streaming._concat

    def spy(parts):
        out = concat(parts)
        held.append(len(out))
        return out

    monkeypatch.setattr(streaming, "_concat", spy)
    list(shuffled_batches(table, batch_size=100, seed=0, epoch=1, buffer_rows=1_000))
    assert held and max(held) <= 1_000 + 700  # the buffer plus one row group, never the table


def test_streamed_training_matches_the_in_memory_path_within_noise(spec, table):
    train = make_inputs(spec, 5_000, seed=1)  # the same rows as the parquet table
    valid = make_inputs(spec, 1_500, seed=2)
    p = np.ones(len(spec.directed)) / len(spec.directed)
    backbone, contrastive = BackboneConfig(hidden_units=[16], embedding_dim=4), ContrastiveConfig(weight=1.0)
    optim = OptimizerConfig(batch_size=256, max_epochs=3, device="cpu")
    memory = train_model(
        spec,
        train,
        valid,
        backbone,
        contrastive,
        optim,
        pairs=draw_pairs(train.bucket, train.dense, train.label, spec, p, seed=0),
    )
    streamed = train_model(spec, table, valid, backbone, contrastive, optim, shapley_p=p, stream_buffer_rows=2_000)
    assert abs(streamed.best_val_auc - memory.best_val_auc) < 0.02, (streamed.best_val_auc, memory.best_val_auc)
    assert streamed.history[0]["samples_per_sec"] > 0 and len(streamed.history) == 3
    again = train_model(spec, table, valid, backbone, contrastive, optim, shapley_p=p, stream_buffer_rows=2_000)
    for a, b in zip(streamed.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert bool((a == b).all())  # seeded: the same weights on a rerun


def test_streamed_ccss_needs_the_feature_draw_probabilities(spec, table):
    valid = make_inputs(spec, 300, seed=2)
    train = make_inputs(spec, 5_000, seed=1)
    pairs = draw_pairs(train.bucket, train.dense, train.label, spec, np.ones(len(spec.directed)) / len(spec.directed))
    with pytest.raises(ValueError, match="needs shapley_p"):
        train_model(
            spec,
            table,
            valid,
            BackboneConfig(hidden_units=[8], embedding_dim=4),
            ContrastiveConfig(weight=1.0),
            OptimizerConfig(batch_size=256, max_epochs=1, device="cpu"),
            pairs=pairs,
        )


def test_a_buffer_smaller_than_a_batch_is_refused(table):
    with pytest.raises(ValueError, match="batch_size"):
        next(shuffled_batches(table, batch_size=512, seed=0, epoch=1, buffer_rows=100))


# ------------------------------------------------------------------ a streamed split used like one in memory
def test_take_reads_any_rows_in_the_order_asked(spec, table):
    memory = make_inputs(spec, 5_000, seed=1)
    index = np.array([4_999, 3, 701, 700, 3, 2_100, 0])  # across row groups, unsorted, a repeat
    got = table.take(index)
    want = memory.take(index)
    for name in ("cat", "dense", "bucket", "label"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert np.array_equal(got.group, index)  # the table's group column is the row number
    assert np.array_equal(table.take(slice(690, 710)).group, np.arange(690, 710))
    assert np.array_equal(table.label, memory.label)
    with pytest.raises(IndexError):
        table.take(np.array([5_000]))


def test_a_folder_of_part_files_is_one_table(spec, tmp_path):
    memory = make_inputs(spec, 3_000, seed=4)
    folder = tmp_path / "train.parquet"
    folder.mkdir()
    for i, rows in enumerate((slice(0, 1_000), slice(1_000, 3_000))):
        _write(memory.take(rows), spec, folder / f"part-{i:05d}.parquet", row_group_rows=600)
    (folder / "_SUCCESS").write_text("")
    table = ParquetModelInput(ParquetTable(folder), spec)
    assert len(table) == 3_000 and table.row_group_rows == (600, 400, 600, 600, 600, 200)
    assert np.array_equal(table.take(np.array([2_999, 999, 1_000])).dense, memory.dense[[2_999, 999, 1_000]])


def test_streamed_scores_and_grid_metrics_equal_the_in_memory_ones(spec, table):
    from ccss_pipeline.evaluation.raw_grid import wrong_step_share
    from ccss_pipeline.model.scoring import predict_logits, score_fn

    memory = make_inputs(spec, 5_000, seed=1)
    valid = make_inputs(spec, 500, seed=2)
    fit = train_model(
        spec,
        memory.take(slice(0, 1_000)),
        valid,
        BackboneConfig(hidden_units=[8], embedding_dim=4),
        ContrastiveConfig(weight=0.0),
        OptimizerConfig(batch_size=256, max_epochs=1, device="cpu"),
    )
    assert np.allclose(predict_logits(fit.model, table), predict_logits(fit.model, memory), rtol=0, atol=1e-6)
    share = [wrong_step_share(score_fn(fit.model), src, spec, levels=20, rows=300, seed=5) for src in (table, memory)]
    assert share[0] == share[1]


def test_a_split_is_streamed_only_above_the_size_limit(spec, table, caplog):
    lazy = ParquetTable(table.path)
    with caplog.at_level("INFO", logger="ccss_pipeline.model.streaming"):
        held = streaming.model_source(lazy, spec, 5_000, "train_model_input")
        streamed = streaming.model_source(lazy, spec, 4_999, "train_model_input")
        never = streaming.model_source(lazy, spec, None, "train_model_input")
    assert isinstance(held, InMemoryData) and isinstance(never, InMemoryData) and len(held) == 5_000
    assert not held.streamed and not never.streamed and streamed.streamed
    assert isinstance(streamed, ParquetModelInput) and len(streamed) == 5_000
    assert "held in memory" in caplog.text and "streamed from" in caplog.text and "8 row groups" in caplog.text
    frame = training_data(ModelInputs.from_frame(lazy.frame(), spec))  # a frame is already in memory
    assert isinstance(frame, InMemoryData) and not frame.streamed


def test_a_table_missing_a_model_column_is_refused_by_name(spec, tmp_path):
    frame = pd.DataFrame({LABEL_COLUMN: [0.0, 1.0], GROUP_COLUMN: [1, 2]})
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(KeyError, match=r"bad.parquet.*lacks columns.*"):
        ParquetModelInput(ParquetTable(tmp_path / "bad.parquet"), spec)
