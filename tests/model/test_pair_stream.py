"""Pairs drawn a chunk at a time: the same pairs whatever batches the rows arrive in, and exactly the
one-shot draw when the table fits in one chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.model.pair_stream import fixed_chunks, pair_chunks
from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ModelInputs


def test_fixed_chunks_recut_any_batches_into_exact_windows():
    frame = pd.DataFrame({"x": np.arange(23)})
    batches = [frame.iloc[:4], frame.iloc[4:5], frame.iloc[5:19], frame.iloc[19:]]
    chunks = list(fixed_chunks(batches, 6))
    assert [len(c) for c in chunks] == [6, 6, 6, 5]
    assert pd.concat(chunks)["x"].tolist() == list(range(23))
    with pytest.raises(ValueError, match="chunk_rows"):
        list(fixed_chunks(batches, 0))


def _draw(frame, spec, chunk_rows, batch_sizes):
    p = np.ones(len(spec.directed))
    edges = np.cumsum([0, *batch_sizes])
    batches = [frame.iloc[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return pd.concat(
        list(pair_chunks(batches, spec, p, seed=11, move="decomposed", chunk_rows=chunk_rows)), ignore_index=True
    )


def _frame(inputs: ModelInputs, spec) -> pd.DataFrame:
    columns = {LABEL_COLUMN: inputs.label, GROUP_COLUMN: inputs.group}
    columns |= {c.column: inputs.cat[:, j] for j, c in enumerate(spec.categorical)}
    columns |= {f.dense_column: inputs.dense[:, j] for j, f in enumerate(spec.numerical)}
    columns |= {f.bucket_column: inputs.bucket[:, j] for j, f in enumerate(spec.numerical)}
    return pd.DataFrame(columns)


def test_streamed_pairs_do_not_depend_on_the_batches_and_one_chunk_is_the_one_shot_draw(spec, inputs):
    frame = _frame(inputs, spec)
    n = len(frame)
    whole = _draw(frame, spec, chunk_rows=n, batch_sizes=[n])
    inputs = ModelInputs.from_frame(frame, spec)
    one_shot = draw_pairs(
        inputs.bucket, inputs.dense, inputs.label, spec, np.ones(len(spec.directed)), seed=11, move="decomposed"
    ).to_frame()
    pd.testing.assert_frame_equal(whole, one_shot)

    chunk = max(2, n // 3)
    a = _draw(frame, spec, chunk_rows=chunk, batch_sizes=[n])
    b = _draw(frame, spec, chunk_rows=chunk, batch_sizes=[1, chunk + 1, n - chunk - 2])
    pd.testing.assert_frame_equal(a, b)
    assert a["row"].is_monotonic_increasing and a["row"].max() < n
    assert not a.equals(whole)  # chunks after the first draw from their own streams
