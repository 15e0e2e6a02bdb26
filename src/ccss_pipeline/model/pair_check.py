"""The pair table a training stage reads must be drawn with the move the configuration asks for.

Changing ``counterfactual_pairs.move`` (or ``anchor_share``) and rerunning ``model_training`` alone would
otherwise train on the old pairs (and resume checkpoints of them) silently, reporting results for a move
the configuration no longer names. The check is made once, before a training node runs, by
:class:`~ccss_pipeline.hooks.PairMoveCheckHooks`; the move itself is read here, in one place.
"""

from __future__ import annotations

from typing import Any

from ccss_pipeline.config import PairsConfig, TrainingConfig
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.methods import get_method
from ccss_pipeline.model.moves import get_move, move_name
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.parquet_table import ParquetTable


def pair_move(pairs: ParquetTable) -> str:
    """The counterfactual move the pair table was drawn with (read from its first row group)."""
    head = pairs.read_row_group(0) if pairs.row_groups else pairs.frame()
    return PairTable.from_frame(head).move


def require_configured_move(pairs: ParquetTable, training: Any, pairs_config: Any) -> None:
    """Refuse, for a method that uses pairs (``model_training.method``), a pair table drawn with another
    move (or anchor share) than ``counterfactual_pairs`` asks for. ``training`` and ``pairs_config`` are
    the parameter groups as the catalog holds them (validated models or their plain mappings)."""
    if not get_method(TrainingConfig.model_validate(training).method).uses_pairs:
        return
    config = PairsConfig.model_validate(pairs_config)
    configured = get_move(move_name(config.move, config.anchor_share)).name
    move = pair_move(pairs)
    if move == configured:
        return
    raise StaleArtifactError(
        f"'counterfactual_pairs' ({pairs.path}) was drawn with the move {move!r}, but the parameters "
        f"counterfactual_pairs.move / counterfactual_pairs.anchor_share ask for {configured!r}: it is stale and is "
        "not used. Rebuild it with `kedro run --pipelines=counterfactual_pairs`, then rerun model_training "
        "(or rebuild everything out of date with `dvc repro`)."
    )
