"""CCSS (the default method): the contrastive loss over each batch's counterfactual moves.

The term and the search space are the ones the trainer and the search had before methods were
pluggable, moved here unchanged, so ``method: ccss`` trains bit-for-bit the same weights, and its
checkpoints and studies keep their names (:meth:`CCSS.fingerprint` and :meth:`CCSS.study_key` add
nothing: every CCSS setting is in ``contrastive`` and ``search``, which are hashed already).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ccss_pipeline.config import ContrastiveConfig, SearchConfig, SearchRange, TrainingConfig
from ccss_pipeline.model.batches import Batch
from ccss_pipeline.model.losses import PairOutputs, counterfactual_loss
from ccss_pipeline.model.methods.base import BatchTerm, MonotonicityMethod, register
from ccss_pipeline.spec import FeatureSpec

if TYPE_CHECKING:
    import optuna


def suggest_contrastive(
    trial: optuna.trial.BaseTrial, base: ContrastiveConfig, search: SearchConfig
) -> ContrastiveConfig:
    """λ and m always; τ only for the losses that have one (infonce, bpr); the edge weight and margin
    and the pair fraction where the search configuration gives them a range."""
    update: dict[str, Any] = {
        "weight": trial.suggest_float("weight", search.weight.low, search.weight.high, log=search.weight.log),
        "margin": trial.suggest_float("margin", search.margin.low, search.margin.high, log=search.margin.log),
    }
    if base.loss in ("infonce", "bpr"):
        t = search.temperature
        update["temperature"] = trial.suggest_float("temperature", t.low, t.high, log=t.log)
    for name in ("edge_weight", "edge_margin", "pair_fraction"):  # searched only when given a range
        r = getattr(search, name)
        if r is not None:
            update[name] = trial.suggest_float(name, r.low, r.high, log=r.log)
    return base.model_copy(update=update)


def ccss_term(step: torch.nn.Module, batch: Batch, cfg: ContrastiveConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """O and the batch's counterfactual points in one forward; the contrastive loss of the pairs.

    A batch without pairs (none drawn for it) is the plain forward and no term."""
    pb = batch.pairs
    if pb is None:
        z_o, _ = step(batch.cat, batch.dense, batch.bucket)
        return z_o, None
    p = len(pb)  # the first p rows of a batch are a random subset, as the batch is in random order
    z_o, z_pts, h_o, h_pts = step(batch.cat, batch.dense, batch.bucket, p, pb.feature, pb.point_bucket, pb.point_dense)
    return z_o, counterfactual_loss(pb, PairOutputs(z_o[:p], z_pts, h_o[:p], h_pts), cfg)


@register
@dataclass(frozen=True)
class CCSS(MonotonicityMethod):
    """The counterfactual contrastive loss (``docs/method.md`` §2–3); its settings are ``contrastive``."""

    name: ClassVar[str] = "ccss"
    uses_pairs: ClassVar[bool] = True

    @classmethod
    def from_training(cls, training: TrainingConfig, tuned: Mapping[str, float] | None = None) -> CCSS:
        return cls()

    def suggest(self, trial: optuna.trial.BaseTrial, training: TrainingConfig) -> tuple[ContrastiveConfig, CCSS]:
        return suggest_contrastive(trial, training.contrastive, training.search), self

    def weight_range(self, training: TrainingConfig) -> SearchRange:
        """``search.weight``, the range :func:`suggest_contrastive` draws λ from."""
        return training.search.weight

    def bind(self, spec: FeatureSpec, device: torch.device, pair_rows: int) -> BatchTerm:
        return ccss_term  # the pairs come with the batch (``Batch.pairs``)

    def fingerprint(self) -> list[Any]:
        return []

    def study_key(self, training: TrainingConfig) -> list[Any]:
        return []
