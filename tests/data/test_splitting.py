"""Time-ordered split: strict order between splits, fractions, and ties never straddling a cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import SplitConfig
from ccss_pipeline.data.splitting import split_by_time
from ccss_pipeline.spec import TIME_COLUMN


def _frame(ts) -> pd.DataFrame:
    ts = np.asarray(ts, dtype=np.int64)
    return pd.DataFrame({TIME_COLUMN: ts, "row": np.arange(len(ts))})


@pytest.mark.parametrize(("valid", "test"), [(0.15, 0.15), (0.1, 0.3), (0.25, 0.05)])
def test_fractions_and_strict_order_distinct_times(valid, test):
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
def test_ties_never_straddle(seed):
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


def test_unsorted_input_is_split_by_time_not_position():
    ts = np.arange(100)[::-1].copy()
    tr, va, te = split_by_time(_frame(ts), SplitConfig(validation_fraction=0.2, test_fraction=0.2))
    assert tr[TIME_COLUMN].max() < va[TIME_COLUMN].min() <= va[TIME_COLUMN].max() < te[TIME_COLUMN].min()
    assert len(te) == 20 and len(va) == 20


def test_single_timestamp_goes_to_test_only():
    tr, va, te = split_by_time(_frame([5] * 10), SplitConfig())
    assert len(tr) == 0 and len(va) == 0 and len(te) == 10


def test_empty_table_rejected():
    with pytest.raises(ValueError, match="empty"):
        split_by_time(_frame([]), SplitConfig())


def test_split_config_bounds():
    with pytest.raises(ValueError):
        SplitConfig(validation_fraction=0.0)
    with pytest.raises(ValueError):
        SplitConfig(test_fraction=0.5)
