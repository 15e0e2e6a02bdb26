"""One optimisation step and one epoch of a fit, and early stopping's validations inside an epoch.

:class:`StepForward` is the training forward as one module (what DistributedDataParallel wraps);
:class:`TrainStep` one step on a batch through the method's term; :func:`train_epoch` a pass over a
rank's batches; :class:`InEpochValidation` the validations an epoch holds beside its last one
(``optimizer.validations_per_epoch``, :func:`validations_per_epoch`). The loop over the epochs is
:class:`~ccss_pipeline.model.trainer.Trainer`'s.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ccss_pipeline.config import ContrastiveConfig, OptimizerConfig
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.batches import Batch
from ccss_pipeline.model.checkpoint import FitState
from ccss_pipeline.model.losses import total_loss
from ccss_pipeline.model.methods import BatchTerm

logger = logging.getLogger(__name__)


class StepForward(torch.nn.Module):
    """The training forward as one ``forward`` (plain, or with a batch's counterfactual points), so
    DistributedDataParallel, which hooks ``forward`` only, syncs the gradients of both."""

    def __init__(self, model: CTRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, c: torch.Tensor, d: torch.Tensor, b: torch.Tensor, *points: Any) -> tuple:
        if not points:
            return self.model(c, d, b)
        return self.model.forward_points(c, d, b, *points)


# ------------------------------------------------------------------------------------ a step, an epoch
@dataclass(frozen=True)
class TrainStep:
    """One optimisation step on a batch: the forward (``StepForward``, DDP-wrapped or not) through the method's
    ``term`` (None: the plain forward), BCE + ``lam`` · the term, backward, the optimizer's step; bf16
    autocast on CUDA."""

    forward: torch.nn.Module
    optimizer: torch.optim.Optimizer
    term: BatchTerm | None
    lam: float
    contrastive: ContrastiveConfig
    device: torch.device

    def __call__(self, batch: Batch) -> torch.Tensor:
        """The batch's loss (detached), after the step."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            if self.term is None:
                z_o, _ = self.forward(batch.cat, batch.dense, batch.bucket)
                extra = None
            else:
                z_o, extra = self.term(self.forward, batch, self.contrastive)
            loss = total_loss(z_o, batch.label, extra, self.lam)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def train_epoch(
    step: TrainStep,
    batches: Iterator[Batch],
    on_batch: Callable[[], object] = lambda: None,
    in_epoch: InEpochValidation | None = None,
) -> float:
    """One pass over ``batches``, a :class:`TrainStep` each; the mean loss over every rank's batches.
    ``in_epoch``: validations inside the epoch, which may end it early (one process only)."""
    totals = torch.zeros(2, device=step.device)  # loss sum, batches
    ddp = step.forward if isinstance(step.forward, DistributedDataParallel) else None
    with ddp.join() if ddp is not None else nullcontext():  # shards may differ by a batch
        for batch in batches:
            totals[0] += step(batch).float()
            totals[1] += 1
            on_batch()
            if in_epoch is not None and in_epoch.after_batch():
                break
    if ddp is not None:
        dist.all_reduce(totals)
    return float(totals[0].item()) / max(float(totals[1].item()), 1.0)


def validations_per_epoch(optim_cfg: OptimizerConfig, world: int) -> int:
    """``optimizer.validations_per_epoch``; 1 under DDP, where validating mid-epoch would stop every rank
    inside its uneven shard (``join``) to wait for rank 0's score — said once in the log."""
    if world > 1 and optim_cfg.validations_per_epoch > 1:
        logger.warning(
            "optimizer.validations_per_epoch=%d: distributed fits validate once an epoch, at its end",
            optim_cfg.validations_per_epoch,
        )
        return 1
    return optim_cfg.validations_per_epoch


@dataclass
class InEpochValidation:
    """Early stopping's validations inside an epoch: after every ``every`` batches but the epoch's last
    (the end-of-epoch validation stays in the loop), the validation AUC updates ``state.stopping``
    and the best weights are kept when it improves; the epoch ends when early stopping says stop.

    Why: the default data's fits peak after one or two epochs and overfit fast after it (validation AUC
    −0.002 to −0.004 an epoch), so a fit stopped at an epoch boundary keeps a model up to half an epoch
    past its peak — and CCSS, whose term slows the first epoch, lands past it more often than its
    baseline, which the test split (later in time) charges as AUC lost to CCSS."""

    n_batches: int  # the epoch's batches (a streamed split: its expected number)
    checks: int  # validations an epoch, the end-of-epoch one included
    validate: Callable[[], float]
    state: FitState
    epoch: int
    batches: int = 0
    stopped_early: bool = False

    @property
    def every(self) -> int:
        return max(1, math.ceil(self.n_batches / self.checks))

    def after_batch(self) -> bool:
        """Count a batch; validate when due. True: stop the epoch here."""
        self.batches += 1
        if self.batches >= self.n_batches or self.batches % self.every:
            return False
        auc = self.validate()
        if not math.isnan(auc) and self.state.stopping.update(self.epoch, auc):
            self.state.keep_best()
        logger.debug("epoch %d, batch %d: val_auc %.5f", self.epoch, self.batches, auc)
        self.stopped_early = self.state.stopping.stopped
        return self.stopped_early
