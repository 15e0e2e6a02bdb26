"""The names of the gate's rules: every failure message says which one it broke."""

from __future__ import annotations

LOG_TABLE = "log"

# Readable rule names (used in messages, reports and tests).
RULE_EXISTS = "column exists"
RULE_TABLE_PRESENT = "table present"
RULE_ROWS = "row count >= 1"
RULE_LABEL_SET = "label in {0, 1}"
RULE_LABEL_NOT_NULL = "label not null"
RULE_ID_NOT_NULL = "id not null"
RULE_NUMERIC_DTYPE = "numeric dtype"
RULE_FINITE_NAN = "values finite (no NaN)"
RULE_FINITE_INF = "values finite (no ±inf)"
RULE_COUNT = "count >= 0"
RULE_TS_PARSEABLE = "timestamp parseable"
RULE_TS_RANGE = "timestamp in range"
RULE_UNIQUE_KEY = "unique key"
RULE_DUP_IMPRESSIONS = "no duplicated impressions"
RULE_NOT_ALL_NULL = "not entirely null"
RULE_KEY_TYPES = "join key types match"
RULE_KEY_COVERAGE = "key found in side table"
RULE_BOTH_CLASSES = "both classes present"
RULE_SPLIT_NOT_EMPTY = "split not empty"
RULE_TIME_ORDER = "time order (no leakage)"
