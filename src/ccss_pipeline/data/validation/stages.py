"""The gate as the pipeline's stages call it: the raw source, the rows to score and the split.

Nodes call these and nothing else of the gate, so the choice between the gate's two implementations is
made here, once (:func:`validate_raw_source`):

- **engine tables** (an :class:`~ccss_pipeline.data.sources.EngineSource`: files the engine scans,
  any size) go to :func:`~ccss_pipeline.data.validation.table_gate.validate_source_tables` — the row
  rules in GX on batches read from the engine, the whole-table rules as engine aggregates;
- **frames** (the in-memory sources: synthetic, KuaiRand, own tables read by pandas, chunks to score)
  go to :func:`~ccss_pipeline.data.validation.gates.validate_source` — every rule in GX on the frame.

Both build the same suites (:func:`~ccss_pipeline.data.validation.suites.build_table_suite`) and give
the same verdict (file, table, column, rule, count: ``tests/data/test_table_gate.py``). Why two, not
one engine gate fed ``ibis.memtable`` frames:

1. GX 1.x validates pandas batches, not Ibis expressions: on an engine table it can only run on batches
   collected from it, and the rules a batch cannot decide (unique key, duplicated impressions, key
   coverage, not entirely null) need the engine's aggregates there. A frame already in memory needs
   neither, and GX on the whole frame gives the *first* offending values in file order as examples,
   where the engine gives the smallest ones: what the reports of every in-memory run show today.
2. Arrow (hence a memtable) cannot hold what a pandas column can: an ``object`` column mixing numbers
   and text (``[1.5, 2, "x"]``) raises ``ArrowTypeError`` when converted, naming neither the file nor the
   rule; the frame gate reports it as "numeric dtype" failed for that one row, e.g. ``'x'``. An
   all-``None`` object column becomes Arrow's ``null`` type and would lose its value rules.

Every entry point here imports Great Expectations (~8 s) only when a gate runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig, ValidationConfig
from ccss_pipeline.data.sources import origin_of
from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN

RAW_TITLE = "Raw data validation"

#: Where each split's table is written (the split report names these files).
SPLIT_ORIGINS = {s: f"data/03_primary/{s}_interactions.parquet" for s in ("train", "validation", "test")}


def is_engine_source(raw_source: Mapping[str, Any]) -> bool:
    """True when the source's tables are engine tables (Ibis), not in-memory frames."""
    return not any(isinstance(t, pd.DataFrame) for t in raw_source.values())


def validate_raw_source(
    raw_source: Mapping[str, Any],
    schema: SchemaConfig,
    cfg: ValidationConfig,
    *,
    label_required: bool = True,
    title: str = RAW_TITLE,
) -> ValidationReport:
    """Every raw table's suite and the side tables' join checks, on whichever form the source has (see
    the module docstring); ``label_required=False`` for rows to score (the label rules apply only when
    the label is there)."""
    if is_engine_source(raw_source):  # read by the engine: every row, a batch at a time
        from ccss_pipeline.data.validation.table_gate import validate_source_tables

        origins = dict(getattr(raw_source, "origins", {}))
        return validate_source_tables(
            raw_source, origins, schema, cfg, label_required=label_required, title=title, batch_rows=cfg.batch_rows
        )
    from ccss_pipeline.data.validation.gates import validate_source

    frame_origins = {name: origin_of(frame, name) for name, frame in raw_source.items()}
    return validate_source(raw_source, frame_origins, schema, cfg, label_required=label_required, title=title)


def validate_split(train: Any, validation: Any, test: Any, features: FeatureConfig | None = None) -> ValidationReport:
    """No empty split, labels in {0, 1} and both classes in every split; train < validation < test in
    ``event_ts`` for the ``time`` and ``row_order`` splits (``event_ts`` is the row number in the latter),
    not for ``random`` and ``column`` splits, which are not ordered (``features`` absent: a time split).

    The splits are engine tables (a caller holding frames passes them through
    :func:`ccss_pipeline.data.relational.in_memory.in_memory`); GX reads them a batch at a time.
    """
    from ccss_pipeline.data.validation.split_gate import validate_split_tables

    mode = (features or FeatureConfig()).split.mode
    tables = {"train": train, "validation": validation, "test": test}
    return validate_split_tables(
        tables, LABEL_COLUMN, TIME_COLUMN, SPLIT_ORIGINS, allow_ties=False, check_order=mode in ("time", "row_order")
    )
