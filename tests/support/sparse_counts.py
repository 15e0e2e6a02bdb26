"""A seeded table with sparse integer counts, as practitioners bring them (most rows 0, a long thin tail).

The true click logit rises with every count step, so a model can and should be monotone at every
integer value; the interpolated-quantile grid of such a count lands on values no row can take and
skips most of its steps, which is what the discrete-feature tests pin down.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, TIME_COLUMN

SPARSE_SCHEMA = SchemaConfig(
    source="table",
    label="clicked",
    user="uid",
    item="iid",
    timestamp="ts",
    categorical=["device"],
    numerical=[
        {"name": "rare_count", "direction": +1},  # 97% zeros, 0..20
        {"name": "visits", "direction": +1},  # 0..12, a few values common
        {"name": "price", "direction": -1, "transform": "log1p"},  # continuous
    ],
)
SPARSE_CFG = FeatureConfig(n_buckets=16, min_category_count=2)


def sparse_count_table(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """``n`` impressions with two directed integer counts, one continuous price, users, items, devices."""
    rng = np.random.default_rng(seed)
    rare = np.where(rng.random(n) < 0.97, 0, np.minimum(rng.geometric(0.25, n), 20))
    visits = np.minimum(rng.poisson(1.5, n), 12)
    price = np.round(rng.exponential(30.0, n), 2)
    uid = rng.integers(0, 300, n)
    device = rng.choice(["ios", "android", "web"], n)
    logit = -1.0 + 0.12 * rare + 0.25 * visits - 0.02 * price + 0.3 * (device == "ios") + rng.normal(0, 0.3, n)
    return pd.DataFrame(
        {
            "clicked": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8),
            "uid": uid,
            "iid": rng.integers(0, 400, n),
            "ts": np.sort(rng.integers(1_650_000_000_000, 1_651_000_000_000, n)),
            "device": device,
            "rare_count": rare.astype(np.int64),
            "visits": visits.astype(np.int64),
            "price": price,
        }
    )


def as_split(raw: pd.DataFrame) -> pd.DataFrame:
    """The table as the feature stage hands a split to the transformer (canonical column names)."""
    return raw.rename(columns={"uid": "user", "iid": "item", "clicked": LABEL_COLUMN, "ts": TIME_COLUMN}).assign(
        **{GROUP_COLUMN: raw["uid"].to_numpy()}
    )
