"""A seeded generator of a KuaiRand-shaped log whose true click probability is known.

It is the embedded default data source and the project's oracle: the true logit is an explicit
function of observable columns, monotone in the directed ones, so evaluation can check a model's
learned directions against the truth. It is built to be a *fair* test of monotonicity:

- directed features are correlated with undirected ones that push the other way
  (``hist_ctr`` +1 vs ``show_cnt``; ``user_active_days`` +1 vs ``register_days``);
- directed features have thin tails (few rows in the extreme buckets);
- directed effects interact with categorical context (a multiplicative factor that stays positive,
  so the directions hold everywhere);
- per-impression context noise and user / video / tag random effects.

The output tables follow the official KuaiRand layout (``log_standard``, ``user_features``,
``video_features_basic``, ``video_features_statistic``), so the same loader, validation and feature
code serve synthetic and real data. Everything is vectorized numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: The generator's true directions (the oracle), keyed by column name.
TRUE_DIRECTIONS: dict[str, int] = {
    "hist_ctr": +1,
    "user_active_days": +1,
    "duration_ms": -1,
}

_DEGREES = np.array(["full_active", "high_active", "middle_active", "low_active"])
_DEGREE_ACTIVITY = np.array([1.0, 0.4, -0.2, -0.9])
_VIDEO_TYPES = np.array(["NORMAL", "AD"])
_START = pd.Timestamp("2022-04-08", tz="Asia/Shanghai")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the synthetic log (about 14 impressions per user-day at the defaults)."""

    n_users: int = 2000
    n_videos: int = 3000
    n_days: int = 14
    impressions_per_user_day: float = 6.0
    n_tags: int = 30
    noise_std: float = 0.3
    seed: int = 7


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def _users(cfg: SyntheticConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_users
    degree_idx = rng.choice(len(_DEGREES), size=n, p=[0.25, 0.3, 0.3, 0.15])
    activity = _DEGREE_ACTIVITY[degree_idx] + rng.normal(0, 0.6, n)
    active_days = np.clip(np.round(30 * _sigmoid(1.2 * activity + rng.normal(0, 0.4, n))), 0, 30)
    register_days = np.round(np.exp(5.3 + 0.7 * activity + rng.normal(0, 0.45, n))) + 1
    fans = np.floor(np.exp(rng.normal(2.0, 1.6, n)))
    follows = np.floor(np.exp(rng.normal(3.0, 1.0, n) + 0.3 * activity))
    return pd.DataFrame(
        {
            "user_id": np.arange(n, dtype=np.int64),
            "user_active_degree": _DEGREES[degree_idx],
            "user_active_days": active_days.astype(np.int64),
            "register_days": register_days.astype(np.int64),
            "fans_user_num": fans.astype(np.int64),
            "follow_user_num": follows.astype(np.int64),
            "_activity": activity,
            "_bias": rng.normal(0, 0.35, n),
        }
    )


def _videos(cfg: SyntheticConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_videos
    quality = rng.normal(0, 1, n)
    # Thin tails: a logistic of a Gaussian puts few videos at the extremes of click-through.
    hist_ctr = _sigmoid(-0.9 + 0.75 * quality + rng.normal(0, 0.25, n))
    # Good videos get shown more: show_cnt is strongly correlated with hist_ctr.
    show_cnt = np.floor(np.exp(6.5 + 0.9 * quality + rng.normal(0, 0.5, n))) + 1
    duration_ms = np.round(np.exp(np.log(25_000) + rng.normal(0, 0.6, n) - 0.15 * quality))
    return pd.DataFrame(
        {
            "video_id": np.arange(n, dtype=np.int64),
            "video_type": _VIDEO_TYPES[(rng.random(n) < 0.12).astype(int)],
            "tag": rng.integers(0, cfg.n_tags, n).astype(np.int64),
            "hist_ctr": hist_ctr,
            "show_cnt": show_cnt.astype(np.int64),
            "duration_ms": duration_ms.astype(np.int64),
            "_bias": rng.normal(0, 0.25, n),
            "_popularity": np.exp(0.8 * quality + rng.normal(0, 0.5, n)),
        }
    )


def true_logit(log: pd.DataFrame, users: pd.DataFrame, videos: pd.DataFrame, tag_effect: np.ndarray) -> np.ndarray:
    """The oracle's logit without noise: monotone in the columns of :data:`TRUE_DIRECTIONS`."""
    u = users.set_index("user_id").loc[log["user_id"].to_numpy()]
    v = videos.set_index("video_id").loc[log["video_id"].to_numpy()]
    hist = v["hist_ctr"].to_numpy()
    ad = (v["video_type"].to_numpy() == "AD").astype(float)
    full = (u["user_active_degree"].to_numpy() == "full_active").astype(float)
    dur_min = log["duration_ms"].to_numpy() / 60_000.0
    # Directed terms; each multiplier is > 0, so the direction holds in every context.
    ctr_term = 1.6 * np.log(hist / (1 - hist)) * (1.0 + 0.6 * full)
    days_term = 0.9 * np.sqrt(u["user_active_days"].to_numpy() / 30.0) * (1.0 + 0.5 * ad)
    duration_term = -0.8 * np.log1p(dur_min) * (1.0 + 0.7 * ad)
    # Undirected terms correlated with directed features that push the other way.
    show_term = -0.55 * _zscore(np.log(v["show_cnt"].to_numpy().astype(float)))
    register_z = _zscore(np.log(u["register_days"].to_numpy().astype(float)))
    register_term = -0.5 * register_z + 0.15 * register_z**2
    fans_term = 0.1 * np.sin(np.log1p(u["fans_user_num"].to_numpy().astype(float)))
    categorical = u["_bias"].to_numpy() + v["_bias"].to_numpy() + tag_effect[v["tag"].to_numpy()] - 0.4 * ad
    return 0.2 + ctr_term + days_term + duration_term + show_term + register_term + fans_term + categorical


def generate(cfg: SyntheticConfig | None = None) -> dict[str, pd.DataFrame]:
    """Generate the tables: ``log`` (with ``oracle_prob``), ``users``, ``videos``, ``directions``."""
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    users = _users(cfg, rng)
    videos = _videos(cfg, rng)
    tag_effect = rng.normal(0, 0.3, cfg.n_tags)

    # Impressions: more for active users, videos drawn by popularity.
    rate = cfg.impressions_per_user_day * np.exp(0.5 * users["_activity"].to_numpy())
    counts = rng.poisson(np.broadcast_to(rate, (cfg.n_days, cfg.n_users)))  # (days, users)
    day_idx, user_idx = np.nonzero(counts)
    reps = counts[day_idx, user_idx]
    day = np.repeat(day_idx, reps)
    user = np.repeat(user_idx, reps)
    log = _log_rows(cfg, rng, users, videos, tag_effect, day, user)

    public_users = users.drop(columns=["_activity", "_bias"])
    public_videos = videos.drop(columns=["_bias", "_popularity"])
    directions = pd.DataFrame({"feature": list(TRUE_DIRECTIONS), "direction": list(TRUE_DIRECTIONS.values())})
    return {"log": log, "users": public_users, "videos": public_videos, "directions": directions}


def _log_rows(
    cfg: SyntheticConfig,
    rng: np.random.Generator,
    users: pd.DataFrame,
    videos: pd.DataFrame,
    tag_effect: np.ndarray,
    day: np.ndarray,
    user: np.ndarray,
) -> pd.DataFrame:
    """The log rows of the given (day, user) impressions: videos by popularity, times, oracle and clicks."""
    n = day.size
    pop = videos["_popularity"].to_numpy()
    video = rng.choice(cfg.n_videos, size=n, p=pop / pop.sum())
    ms_in_day = rng.integers(0, 86_400_000, n)
    time_ms = (_START.value // 1_000_000) + day.astype(np.int64) * 86_400_000 + ms_in_day
    order = np.argsort(time_ms, kind="stable")
    user, video, time_ms = user[order], video[order], time_ms[order]
    # Same user, video and millisecond twice would be a duplicated impression: nudge it.
    time_ms = time_ms + _duplicate_rank(user, video, time_ms)

    local = pd.to_datetime(time_ms, unit="ms", utc=True).tz_convert("Asia/Shanghai")
    log = pd.DataFrame(
        {
            "user_id": user.astype(np.int64),
            "video_id": video.astype(np.int64),
            "date": local.strftime("%Y%m%d").astype(np.int64),
            "hourmin": (local.hour * 100 + local.minute).astype(np.int64),
            "time_ms": time_ms,
            "duration_ms": videos["duration_ms"].to_numpy()[video],
        }
    )
    logit = true_logit(log, users, videos, tag_effect) + rng.normal(0, cfg.noise_std, n)
    prob = _sigmoid(logit)
    log["is_click"] = (rng.random(n) < prob).astype(np.int64)
    log["oracle_prob"] = prob
    return log


def write_parquet(cfg: SyntheticConfig, folder: str | Path, chunk_rows: int = 2_000_000) -> dict[str, Path]:
    """Write a log of any size to ``folder`` as parquet, one chunk at a time (memory: one chunk).

    ``log/part-*.parquet`` (chunks of about ``chunk_rows`` rows: a block of users on one day), plus
    ``users.parquet``, ``videos.parquet`` and ``directions.parquet``. The same model as :func:`generate`
    (users, videos and the oracle are drawn alike); each chunk draws from its own seeded stream, so the
    log is deterministic but not the draw :func:`generate` makes. Returns table name -> path.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    (folder / "log").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    users = _users(cfg, rng)
    videos = _videos(cfg, rng)
    tag_effect = rng.normal(0, 0.3, cfg.n_tags)
    rate = cfg.impressions_per_user_day * np.exp(0.5 * users["_activity"].to_numpy())
    block = max(1, int(chunk_rows / max(float(rate.mean()), 1e-9)))
    part = 0
    for day in range(cfg.n_days):
        for start in range(0, cfg.n_users, block):
            chunk_rng = np.random.default_rng([cfg.seed, day, start])
            idx = np.arange(start, min(start + block, cfg.n_users))
            counts = chunk_rng.poisson(rate[idx])
            user = np.repeat(idx, counts)
            log = _log_rows(cfg, chunk_rng, users, videos, tag_effect, np.full(user.size, day), user)
            pq.write_table(pa.Table.from_pandas(log, preserve_index=False), folder / "log" / f"part-{part:05d}.parquet")
            part += 1
    paths = {
        "log": folder / "log",
        "users": folder / "users.parquet",
        "videos": folder / "videos.parquet",
        "directions": folder / "directions.parquet",
    }
    users.drop(columns=["_activity", "_bias"]).to_parquet(paths["users"], index=False)
    videos.drop(columns=["_bias", "_popularity"]).to_parquet(paths["videos"], index=False)
    pd.DataFrame({"feature": list(TRUE_DIRECTIONS), "direction": list(TRUE_DIRECTIONS.values())}).to_parquet(
        paths["directions"], index=False
    )
    return paths


def _duplicate_rank(user: np.ndarray, video: np.ndarray, time_ms: np.ndarray) -> np.ndarray:
    """0 for the first occurrence of a (user, video, ms) triple, 1 for the second, ..."""
    keys = pd.DataFrame({"u": user, "v": video, "t": time_ms})
    return keys.groupby(["u", "v", "t"], sort=False).cumcount().to_numpy(np.int64)
