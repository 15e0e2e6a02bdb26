"""Leak-free log features: a hand-computed example, ties, and a label-shuffling leakage test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.data.interactions import ITEM, USER
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN
from tests.support.configs import ALL_LOG_FEATURES
from tests.support.frame_stages import add_log_features

DAY = 86_400_000

ALL_FEATURES = ALL_LOG_FEATURES


def _frame(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    """rows of (user, item, label, event_ts)."""
    u, i, y, t = zip(*rows, strict=True)
    return pd.DataFrame({USER: u, ITEM: i, LABEL_COLUMN: np.array(y, np.int8), TIME_COLUMN: np.array(t, np.int64)})


SMALL = _frame(
    [
        (1, 10, 1, 0),
        (1, 11, 0, 1000),
        (2, 10, 1, 1000),  # same time as the row above (other user, other item)
        (1, 10, 1, DAY + 5),
        (1, 10, 0, DAY + 5),  # tie: same user, same item, same time as the row above
        (2, 11, 1, 2 * DAY),
        (1, 12, 1, 3 * DAY),
    ]
)


def test_hand_computed_example():
    out = add_log_features(SMALL, ALL_FEATURES)
    assert out["user_impressions"].tolist() == [0, 1, 0, 2, 2, 1, 4]
    assert out["user_clicks"].tolist() == [0, 1, 0, 1, 1, 1, 2]
    assert out["item_impressions"].tolist() == [0, 0, 1, 2, 2, 1, 0]
    assert out["item_clicks"].tolist() == [0, 0, 1, 2, 2, 0, 0]
    assert out["user_active_days"].tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert out["item_active_days"].tolist() == [0, 0, 0, 1, 1, 1, 0]
    # global prior: Laplace-smoothed click rate of all events strictly before (ties share the first's)
    prior = np.array(
        [
            (0 + 1) / (0 + 2),
            (1 + 1) / (1 + 2),
            (1 + 1) / (1 + 2),
            (2 + 1) / (3 + 2),
            (2 + 1) / (3 + 2),
            (3 + 1) / (5 + 2),
            (4 + 1) / (6 + 2),
        ]
    )
    imp, clk = out["user_impressions"].to_numpy(), out["user_clicks"].to_numpy()
    np.testing.assert_allclose(out["user_smoothed_ctr"], (clk + 2 * prior) / (imp + 2))
    imp, clk = out["item_impressions"].to_numpy(), out["item_clicks"].to_numpy()
    np.testing.assert_allclose(out["item_smoothed_ctr"], (clk + 2 * prior) / (imp + 2))
    # prior_strength 0: the raw ratio, the prior where there is no history
    np.testing.assert_allclose(out["item_raw_ctr"], [prior[0], prior[1], 1.0, 1.0, 1.0, 0.0, prior[6]])


def test_input_unchanged_and_columns_appended():
    before = SMALL.copy()
    out = add_log_features(SMALL, ALL_FEATURES[:2])
    pd.testing.assert_frame_equal(SMALL, before)
    assert list(out.columns) == [*SMALL.columns, "user_impressions", "user_clicks"]


def test_ties_do_not_see_each_other():
    """Three simultaneous clicks of one user and item: each sees only what came strictly before."""
    frame = _frame([(1, 10, 0, 0), (1, 10, 1, 50), (1, 10, 1, 50), (1, 10, 1, 50), (1, 10, 0, 60)])
    out = add_log_features(frame, ALL_FEATURES)
    for entity in ("user", "item"):
        assert out[f"{entity}_impressions"].tolist() == [0, 1, 1, 1, 4]
        assert out[f"{entity}_clicks"].tolist() == [0, 0, 0, 0, 3]
        assert out[f"{entity}_smoothed_ctr"].iloc[1:4].nunique() == 1


def test_unsorted_input_rejected():
    with pytest.raises(ValueError, match="sorted"):
        add_log_features(SMALL.iloc[::-1].reset_index(drop=True), ALL_FEATURES)


def _random_log(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 6 * DAY, n))
    ts[rng.random(n) < 0.3] = ts[0]  # many ties, including at the cut
    return pd.DataFrame(
        {
            USER: rng.integers(0, 15, n),
            ITEM: rng.integers(0, 25, n),
            LABEL_COLUMN: rng.integers(0, 2, n).astype(np.int8),
            TIME_COLUMN: np.sort(ts),
        }
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_future_labels_do_not_leak(seed):
    """Shuffling the labels of every row after time t changes no feature of any row at or before t."""
    frame = _random_log(600, seed)
    rng = np.random.default_rng(100 + seed)
    names = [f.name for f in ALL_FEATURES]
    before = add_log_features(frame, ALL_FEATURES)
    for t in np.quantile(frame[TIME_COLUMN], [0.2, 0.5, 0.8]).astype(np.int64):
        future = frame[TIME_COLUMN].to_numpy() > t
        shuffled = frame.copy()
        shuffled.loc[future, LABEL_COLUMN] = rng.permutation(shuffled.loc[future, LABEL_COLUMN].to_numpy())
        shuffled.loc[future, LABEL_COLUMN] = 1 - shuffled.loc[future, LABEL_COLUMN]  # and flip them
        after = add_log_features(shuffled, ALL_FEATURES)
        pd.testing.assert_frame_equal(before.loc[~future, names], after.loc[~future, names])
        # sanity: the test can fail — the future rows' features did change
        assert not before.loc[future, names].equals(after.loc[future, names])


def test_own_label_is_not_seen():
    """Flipping one row's label changes no feature of that row (nor of its simultaneous rows)."""
    frame = _random_log(300, 7)
    names = [f.name for f in ALL_FEATURES]
    base = add_log_features(frame, ALL_FEATURES)
    for row in (0, 137, 299):
        flipped = frame.copy()
        flipped.loc[row, LABEL_COLUMN] = 1 - flipped.loc[row, LABEL_COLUMN]
        same_time = frame[TIME_COLUMN] == frame.loc[row, TIME_COLUMN]
        out = add_log_features(flipped, ALL_FEATURES)
        pd.testing.assert_frame_equal(base.loc[same_time, names], out.loc[same_time, names])
