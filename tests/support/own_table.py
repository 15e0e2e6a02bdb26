"""A table as a practitioner brings it (conf/own_table's schema): for the own-table tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: where conf/own_table reads the table, relative to the project
OWN_TABLE = Path("data/01_raw/own/interactions.csv")


def own_table(n: int = 900, seed: int = 0) -> pd.DataFrame:
    """A table matching conf/own_table/parameters_schema.yml, both classes throughout, unique impressions."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-03-01")
    seconds = np.sort(rng.choice(10 * 86_400, size=n, replace=False))
    rating = rng.normal(3.5, 0.8, n).round(2)
    price = rng.exponential(30.0, n).round(2)
    logit = 0.8 * (rating - 3.5) - 0.02 * price + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, n),
            "item_id": rng.integers(0, 80, n),
            "event_time": (start + pd.to_timedelta(seconds, unit="s")).strftime("%Y-%m-%d %H:%M:%S"),
            "clicked": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
            "item_category": rng.choice(["books", "games", "music", "film"], n),
            "device": rng.choice(["ios", "android", "web"], n),
            "item_rating": rating,
            "item_price": price,
            "user_age_days": rng.integers(0, 2000, n),
        }
    )


def write_own(root: Path, frame: pd.DataFrame | None = None, raw: bytes | None = None) -> Path:
    path = root / OWN_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        path.write_bytes(raw)
    else:
        frame.to_csv(path, index=False)
    return path
