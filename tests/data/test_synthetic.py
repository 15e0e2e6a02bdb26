"""The seeded synthetic generator: determinism, sizes, the oracle, and the true directions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.data import synthetic
from ccss_pipeline.data.synthetic import TRUE_DIRECTIONS, SyntheticConfig, generate, true_logit

SMALL = SyntheticConfig(n_users=120, n_videos=150, n_days=4, impressions_per_user_day=3.0, seed=3)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return generate(SMALL)


def test_same_seed_same_tables(tables):
    again = generate(SMALL)
    for name in ("log", "users", "videos", "directions"):
        pd.testing.assert_frame_equal(tables[name], again[name])


def test_other_seed_other_log(tables):
    other = generate(replace(SMALL, seed=SMALL.seed + 1))
    assert not tables["log"]["is_click"].equals(other["log"]["is_click"]) or len(other["log"]) != len(tables["log"])
    assert not np.allclose(tables["videos"]["hist_ctr"], other["videos"]["hist_ctr"])


def test_sizes_scale_with_config(tables):
    assert len(tables["users"]) == SMALL.n_users
    assert len(tables["videos"]) == SMALL.n_videos
    assert tables["users"]["user_id"].is_unique and tables["videos"]["video_id"].is_unique
    bigger = generate(replace(SMALL, n_users=2 * SMALL.n_users, n_days=2 * SMALL.n_days))
    assert len(bigger["users"]) == 2 * SMALL.n_users
    ratio = len(bigger["log"]) / len(tables["log"])
    assert 3.0 < ratio < 5.0  # twice the users for twice the days ~ four times the impressions
    days = pd.to_datetime(bigger["log"]["date"].astype(str)).dt.normalize().nunique()
    assert days == 2 * SMALL.n_days


def test_log_is_time_sorted_and_joinable(tables):
    log = tables["log"]
    assert log["time_ms"].is_monotonic_increasing
    assert set(log["user_id"]) <= set(tables["users"]["user_id"])
    assert set(log["video_id"]) <= set(tables["videos"]["video_id"])
    assert not log.duplicated(["user_id", "video_id", "time_ms"]).any()
    assert set(log["is_click"].unique()) == {0, 1}


def test_oracle_probability_is_a_probability_and_calibrated(tables):
    log = tables["log"]
    p = log["oracle_prob"].to_numpy()
    assert np.all((p > 0) & (p < 1))
    # clicks are Bernoulli(oracle_prob): the mean click rate matches the mean probability
    assert abs(log["is_click"].mean() - p.mean()) < 4 * np.sqrt(p.mean() * (1 - p.mean()) / len(p)) + 0.01


def test_directions_table_is_the_oracle(tables):
    d = tables["directions"]
    assert dict(zip(d["feature"], d["direction"], strict=True)) == TRUE_DIRECTIONS
    assert TRUE_DIRECTIONS == {"hist_ctr": 1, "user_active_days": 1, "duration_ms": -1}


def test_hidden_columns_are_not_public(tables):
    assert not [c for c in tables["users"].columns if c.startswith("_")]
    assert not [c for c in tables["videos"].columns if c.startswith("_")]


def _oracle_inputs(tables):
    """Public tables plus zero random effects: enough to evaluate the noise-free true logit."""
    users = tables["users"].assign(_bias=0.0)
    videos = tables["videos"].assign(_bias=0.0)
    return tables["log"].copy(), users, videos, np.zeros(SMALL.n_tags)


def test_true_logit_increases_with_hist_ctr(tables):
    log, users, videos, tags = _oracle_inputs(tables)
    base = true_logit(log, users, videos, tags)
    up = videos.assign(hist_ctr=np.clip(videos["hist_ctr"] + 0.05, None, 0.999))
    moved = true_logit(log, users, up, tags)
    assert np.all(moved > base)


def test_true_logit_increases_with_user_active_days(tables):
    log, users, videos, tags = _oracle_inputs(tables)
    base = true_logit(log, users, videos, tags)
    up = users.assign(user_active_days=users["user_active_days"] + 3)
    assert np.all(true_logit(log, up, videos, tags) > base)


def test_true_logit_decreases_with_duration(tables):
    log, users, videos, tags = _oracle_inputs(tables)
    base = true_logit(log, users, videos, tags)
    longer = log.assign(duration_ms=log["duration_ms"] * 2 + 1000)
    assert np.all(true_logit(longer, users, videos, tags) < base)


def test_true_logit_depends_on_undirected_features(tables):
    """show_cnt is a real (undirected) input: changing one video's count changes the logit."""
    log, users, videos, tags = _oracle_inputs(tables)
    base = true_logit(log, users, videos, tags)
    vid = int(log["video_id"].iloc[0])
    changed = videos.copy()
    changed.loc[changed["video_id"] == vid, "show_cnt"] *= 50
    assert not np.allclose(true_logit(log, users, changed, tags), base)


def test_duplicate_rank_numbers_repeats():
    rank = synthetic._duplicate_rank(np.array([1, 1, 1, 2]), np.array([5, 5, 5, 5]), np.array([9, 9, 8, 9]))
    assert rank.tolist() == [0, 1, 0, 0]
