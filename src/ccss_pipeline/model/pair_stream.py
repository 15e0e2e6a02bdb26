"""Counterfactual pairs drawn a fixed-size chunk of training rows at a time (memory: one chunk).

The draw of one row depends only on its chunk: chunk ``k`` (rows ``k*chunk_rows ..``) draws from
``default_rng(seed)`` when ``k = 0`` and ``default_rng([seed, k])`` after, whatever batches the rows
arrive in. So streaming a parquet file row group by row group, or drawing on a frame held in memory,
gives the same pairs, and a table that fits in one chunk draws exactly as :func:`draw_pairs` with ``seed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from ccss_pipeline.model.synthesis import draw_pairs
from ccss_pipeline.spec import FeatureSpec, ModelInputs

#: Rows per chunk of the default draw (a 1M-row chunk of 7 numerical features is ~100 MB of arrays).
DEFAULT_CHUNK_ROWS = 1_000_000


def fixed_chunks(batches: Iterable[pd.DataFrame], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Re-cut frames of any sizes into consecutive frames of exactly ``chunk_rows`` rows (the last shorter)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    pending: list[pd.DataFrame] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += len(batch)
        while held >= chunk_rows:
            joined = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)
            yield joined.iloc[:chunk_rows]
            rest = joined.iloc[chunk_rows:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)


def chunk_generator(seed: int, chunk: int) -> np.random.Generator:
    """The random stream of chunk ``chunk``: ``seed`` itself for the first, so one-chunk tables draw as before."""
    return np.random.default_rng(seed if chunk == 0 else [seed, chunk])


def pair_chunks(
    batches: Iterable[pd.DataFrame],
    spec: FeatureSpec,
    p: np.ndarray,
    seed: int,
    move: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The pair table of a model-ready table given as batches of rows, one compact frame per chunk;
    ``row`` counts rows from the start of the table."""
    start = 0
    for k, frame in enumerate(fixed_chunks(batches, chunk_rows)):
        inputs = ModelInputs.from_frame(frame, spec)
        pairs = draw_pairs(
            inputs.bucket, inputs.dense, inputs.label, spec, p, seed=chunk_generator(seed, k), move=move
        ).to_frame()
        pairs["row"] += start
        start += len(frame)
        yield pairs
