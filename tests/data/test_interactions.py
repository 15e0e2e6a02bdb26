"""Joining a source bundle into the canonical, time-sorted interaction table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.config import SchemaConfig
from ccss_pipeline.data.interactions import ITEM, USER, build_interactions, join_tables, to_epoch_ms
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, TIME_COLUMN


def _schema(**overrides) -> SchemaConfig:
    base = {
        "source": "table",
        "label": "clicked",
        "user": "uid",
        "item": "iid",
        "timestamp": "ts",
        "timestamp_unit": "ms",
        "categorical": ["device", "genre"],
        "numerical": [{"name": "price", "direction": -1}, {"name": "age", "direction": 0}],
        "side_tables": {"users": {"key": "uid"}, "items": {"key": "iid"}},
    }
    base.update(overrides)
    return SchemaConfig(**base)


def _bundle() -> dict[str, pd.DataFrame]:
    log = pd.DataFrame(
        {
            "uid": [2, 1, 2, 1],
            "iid": [10, 11, 11, 10],
            "clicked": [1, 0, 0, 1],
            "ts": [3000, 1000, 2000, 1000],
            "device": ["ios", "web", "ios", "web"],
            "unused": ["x", "y", "z", "w"],
            "price": [9.0, 1.0, 2.0, 3.0],  # the log wins over the items table's price
        }
    )
    users = pd.DataFrame({"uid": [1, 2, 3], "age": [30, 40, 50], "device": ["no", "no", "no"]})
    items = pd.DataFrame({"iid": [10, 11], "genre": ["a", "b"], "price": [100.0, 200.0]})
    return {"log": log, "users": users, "items": items}


def test_join_left_joins_side_tables_and_log_wins():
    joined = join_tables(_bundle(), _schema())
    assert len(joined) == 4
    assert "unused" not in joined.columns
    assert joined["price"].tolist() == [9.0, 1.0, 2.0, 3.0]
    assert joined["device"].tolist() == ["ios", "web", "ios", "web"]
    assert joined["age"].tolist() == [40, 30, 40, 30]
    assert joined["genre"].tolist() == ["a", "b", "b", "a"]


def test_join_rejects_duplicate_side_keys():
    bundle = _bundle()
    bundle["users"] = pd.concat([bundle["users"], bundle["users"].iloc[[0]]])
    with pytest.raises(Exception, match="many"):
        join_tables(bundle, _schema())


def test_join_names_a_column_in_no_table():
    bundle = _bundle()
    bundle["items"] = bundle["items"].drop(columns=["genre"])
    with pytest.raises(KeyError, match="genre"):
        join_tables(bundle, _schema())


def test_missing_optional_side_table_is_skipped_when_columns_are_in_the_log():
    bundle = _bundle()
    del bundle["users"]
    bundle["log"]["age"] = [1, 2, 3, 4]
    assert join_tables(bundle, _schema())["age"].tolist() == [1, 2, 3, 4]


def test_build_interactions_canonical_columns_types_and_order():
    bundle = _bundle()
    bundle["log"][ORACLE_COLUMN] = [0.9, 0.1, 0.2, 0.8]
    out = build_interactions(bundle, _schema())
    assert list(out.columns) == [
        USER,
        ITEM,
        LABEL_COLUMN,
        TIME_COLUMN,
        "device",
        "genre",
        "price",
        "age",
        ORACLE_COLUMN,
        GROUP_COLUMN,
        "row",
    ]
    assert out["row"].tolist() == [0, 1, 2, 3]  # the canonical order the engine keeps
    assert out[LABEL_COLUMN].dtype == np.int8
    assert out[TIME_COLUMN].dtype == np.int64
    assert out["price"].dtype == np.float64 and out["age"].dtype == np.float64
    assert out[TIME_COLUMN].tolist() == [1000, 1000, 2000, 3000]
    # stable sort: the two rows at t=1000 keep their log order (uid 1 item 11 first, then item 10)
    assert out[ITEM].tolist() == [11, 10, 11, 10]
    assert out[ORACLE_COLUMN].tolist() == [0.1, 0.8, 0.2, 0.9]
    assert (out[GROUP_COLUMN] == out[USER]).all()


def test_repeated_impressions_count_once():
    bundle = _bundle()
    bundle["log"] = pd.concat([bundle["log"], bundle["log"].iloc[[0, 0, 2]]], ignore_index=True)
    out = build_interactions(bundle, _schema())
    assert len(out) == 4
    assert not out.duplicated([USER, ITEM, TIME_COLUMN]).any()


def test_build_interactions_without_timestamp_uses_row_order():
    out = build_interactions(_bundle(), _schema(timestamp=None))
    assert out[TIME_COLUMN].tolist() == [0, 1, 2, 3]
    assert out[USER].tolist() == [2, 1, 2, 1]
    assert ORACLE_COLUMN not in out.columns


@pytest.mark.parametrize(
    ("unit", "values", "expected"),
    [
        ("ms", [1_649_581_149_287, 0], [1_649_581_149_287, 0]),
        ("s", [1_649_581_149, 1.5], [1_649_581_149_000, 1500]),
        ("datetime", ["2022-04-10 08:59:09", "1970-01-01 00:00:01"], [1_649_581_149_000, 1000]),
        ("datetime", ["2022-04-10T10:59:09+02:00", "2022-04-10T08:59:09Z"], [1_649_581_149_000] * 2),
    ],
)
def test_to_epoch_ms_units(unit, values, expected):
    got = to_epoch_ms(pd.Series(values), unit)
    assert got.dtype == np.int64
    assert got.tolist() == expected


def test_to_epoch_ms_units_agree_through_build():
    """The same instants given in ms, s and ISO strings give the same event_ts."""
    ms = np.array([1_650_000_000_000, 1_650_000_060_000, 1_650_000_001_000])
    outs = []
    for unit, ts in (("ms", ms), ("s", ms // 1000), ("datetime", pd.to_datetime(ms, unit="ms").astype(str))):
        bundle = _bundle()
        bundle["log"] = bundle["log"].iloc[:3].assign(ts=list(ts))
        outs.append(build_interactions(bundle, _schema(timestamp_unit=unit))[TIME_COLUMN].tolist())
    assert outs[0] == outs[1] == outs[2] == sorted(ms.tolist())


def test_to_epoch_ms_accepts_mixed_iso_formats_that_validation_accepts():
    """The validation gate parses datetimes with ``format="mixed"`` as a fallback, so a column mixing
    ``"2022-04-10 08:59:09"`` and ``"2022-04-10T08:59:09Z"`` passes "timestamp parseable"; the join must
    then convert it too instead of crashing after the gate."""
    values = pd.Series(["2022-04-10 08:59:09", "1970-01-01T00:00:01Z", "2022-04-10T10:59:09+02:00"])
    assert to_epoch_ms(values, "datetime").tolist() == [1_649_581_149_000, 1000, 1_649_581_149_000]


def test_to_epoch_ms_unparseable_raises():
    with pytest.raises((ValueError, TypeError)):
        to_epoch_ms(pd.Series(["2022-04-10", "not a date"]), "datetime")
    with pytest.raises((ValueError, TypeError)):
        to_epoch_ms(pd.Series(["12", "abc"]), "ms")
