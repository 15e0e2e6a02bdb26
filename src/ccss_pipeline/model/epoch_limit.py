"""A final fit whose best epoch is its last allowed one: the one rule, and the warning that names it.

Early stopping keeps the weights of the best validation epoch. When that epoch is the last one
``optimizer.max_epochs`` allows, the validation AUC was still improving when the budget ran out, so the
model is likely undertrained — and a CCSS-vs-baseline comparison of undertrained models says little.
Nothing stopped such a run before: the training log warns per fit (:func:`warn_at_epoch_limit`), and
the report and the model card repeat it from the evaluation's per-model table (``best_epoch``,
``max_epochs``), which :func:`at_epoch_limit` reads the same way.
"""

from __future__ import annotations

import logging
import math

from ccss_pipeline.model.persistence import TrainedModel

logger = logging.getLogger(__name__)


def at_epoch_limit(best_epoch: object, max_epochs: object) -> bool:
    """True when the best epoch is the last allowed one. Unknown values (None, NaN: a model written
    before either was recorded, an empty cell of a table read back) are never flagged."""
    try:
        best, limit = float(best_epoch), float(max_epochs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(best) and math.isfinite(limit)) or limit < 1:
        return False
    return best >= limit


def epoch_limit_warning(backbone: str, variant: str, seed: int, best_epoch: int, max_epochs: int) -> str:
    """The log line of one fit at the limit: which fit, and the setting to raise."""
    return (
        f"{backbone} {variant} seed {seed}: the best validation epoch ({best_epoch}) is the last one allowed "
        f"(model_training.optimizer.max_epochs = {max_epochs}); the model is likely undertrained — raise "
        "max_epochs and retrain"
    )


def warn_at_epoch_limit(model: TrainedModel) -> bool:
    """Log a warning naming backbone, variant and seed when ``model`` stopped at its epoch limit; returns
    whether it did."""
    limit = model.optimizer.max_epochs if model.optimizer is not None else None
    if not at_epoch_limit(model.best_epoch, limit):
        return False
    assert model.best_epoch is not None and limit is not None  # at_epoch_limit checked both
    logger.warning(epoch_limit_warning(model.backbone_name, model.variant, model.seed, model.best_epoch, limit))
    return True
