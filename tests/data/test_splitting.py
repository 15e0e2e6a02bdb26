"""Time-ordered split: strict order between splits, fractions, and ties never straddling a cut.

Each property is checked on the engine's split (the product's, through the split node) and on the
pandas oracle it replaced (tests.support.split_reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import FeatureConfig, SplitConfig
from ccss_pipeline.spec import TIME_COLUMN
from tests.support.frame_stages import split_interactions
from tests.support.split_reference import split_by_time as pandas_split_by_time


def engine_split_by_time(frame: pd.DataFrame, cfg: SplitConfig) -> tuple[pd.DataFrame, ...]:
    """The split node (time mode) on the frame as an in-memory engine table, read back in frame order."""
    return split_interactions(frame, FeatureConfig(split=cfg))


SPLITS = pytest.mark.parametrize(
    "split_by_time", [engine_split_by_time, pandas_split_by_time], ids=["engine", "pandas"]
)


def _frame(ts) -> pd.DataFrame:
    ts = np.asarray(ts, dtype=np.int64)
    return pd.DataFrame({TIME_COLUMN: ts, "row": np.arange(len(ts))})


@pytest.mark.parametrize(("valid", "test"), [(0.15, 0.15), (0.1, 0.3), (0.25, 0.05)])
@SPLITS
def test_fractions_and_strict_order_distinct_times(valid, test, split_by_time):
    frame = _frame(np.arange(1000) * 10)
    tr, va, te = split_by_time(frame, SplitConfig(validation_fraction=valid, test_fraction=test))
    assert len(tr) + len(va) + len(te) == 1000
    assert abs(len(te) - 1000 * test) <= 1
    assert abs(len(va) - 1000 * valid) <= 1
    assert tr[TIME_COLUMN].max() < va[TIME_COLUMN].min()
    assert va[TIME_COLUMN].max() < te[TIME_COLUMN].min()
    assert sorted([*tr["row"], *va["row"], *te["row"]]) == list(range(1000))
    for part in (tr, va, te):
        assert part.index.tolist() == list(range(len(part)))


@pytest.mark.parametrize("seed", range(5))
@SPLITS
def test_ties_never_straddle(seed, split_by_time):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 40, 500))  # only 40 distinct timestamps: many ties at every cut
    tr, va, te = split_by_time(_frame(ts), SplitConfig())
    assert len(tr) + len(va) + len(te) == 500
    sets = [set(p[TIME_COLUMN]) for p in (tr, va, te)]
    assert not (sets[0] & sets[1]) and not (sets[1] & sets[2]) and not (sets[0] & sets[2])
    if len(va):
        assert tr[TIME_COLUMN].max() < va[TIME_COLUMN].min()
        assert va[TIME_COLUMN].max() < te[TIME_COLUMN].min()
    assert 0.6 < len(tr) / 500 < 0.8  # roughly the requested 70%


@SPLITS
def test_unsorted_input_is_split_by_time_not_position(split_by_time):
    ts = np.arange(100)[::-1].copy()
    tr, va, te = split_by_time(_frame(ts), SplitConfig(validation_fraction=0.2, test_fraction=0.2))
    assert tr[TIME_COLUMN].max() < va[TIME_COLUMN].min() <= va[TIME_COLUMN].max() < te[TIME_COLUMN].min()
    assert len(te) == 20 and len(va) == 20


@SPLITS
def test_single_timestamp_goes_to_test_only(split_by_time):
    tr, va, te = split_by_time(_frame([5] * 10), SplitConfig())
    assert len(tr) == 0 and len(va) == 0 and len(te) == 10


@SPLITS
def test_empty_table_rejected(split_by_time):
    with pytest.raises(ValueError, match="empty"):
        split_by_time(_frame([]), SplitConfig())


def test_split_config_bounds():
    with pytest.raises(ValueError):
        SplitConfig(validation_fraction=0.0)
    with pytest.raises(ValueError):
        SplitConfig(test_fraction=0.5)
