"""The training loop for baseline (λ = 0) and CCSS models: early stopping, resumable, one process or DDP.

The term added to BCE is the monotonicity method's (:mod:`ccss_pipeline.model.methods`: CCSS by
default, or ``pwl``/``hints``): the loop asks the method, bound to the fit, for each batch's logits and
term, and never branches on which method it is.
Shape (as FuxiCTR's ``rank_model``): :func:`train_model` hands a :class:`FitJob` to a :class:`Trainer`,
whose ``fit`` runs the epochs; an epoch is its batches (the training split's
:class:`~ccss_pipeline.model.batches.BatchSource`), each one
:class:`TrainStep` (:func:`train_epoch`), then validation on rank 0, early stopping and the checkpoint.
What the settings decide before anything runs (the method, whether pairs are used, batch sizes) is a
:class:`FitPlan`.
The pieces live beside it: the job and its plan (:mod:`ccss_pipeline.model.fit_plan`), the splits
(:mod:`ccss_pipeline.model.training_data`, in memory, or :mod:`ccss_pipeline.model.streaming`),
a step, an epoch and the validations inside one (:mod:`ccss_pipeline.model.train_step`), batches and
their pairs (:mod:`ccss_pipeline.model.batches`), the state a checkpoint saves and the early-stopping
rule (:mod:`ccss_pipeline.model.checkpoint`), scoring (:mod:`ccss_pipeline.model.scoring`, always float32). bf16 autocast is used for training on CUDA only.
No ``.item()`` inside the batch loop: the loss is accumulated on the device and synced once per epoch.

Determinism/resume: each epoch's permutation (and pair redraw) is derived from (seed, epoch), and the
checkpoint carries everything else that moves (weights, optimizer, RNG), so a killed and resumed CPU
run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, Unpack

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.files import sweep_stale_temporaries
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.checkpoint import CHECKPOINT_NAME, EarlyStopping, FitState, read_checkpoint
from ccss_pipeline.model.device import resolve_device, seed_everything
from ccss_pipeline.model.fit_plan import FitJob, FitOptions, FitPlan, FitSettings
from ccss_pipeline.model.scoring import predict_logits, safe_auc
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.train_step import (
    InEpochValidation,
    StepForward,
    TrainStep,
    train_epoch,
    validations_per_epoch,
)
from ccss_pipeline.model.training_data import TrainingData, training_data
from ccss_pipeline.spec import FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_NAME",
    "FitJob",
    "FitOptions",
    "FitPlan",
    "FitSettings",
    "TrainResult",
    "TrainStep",
    "Trainer",
    "fit_recalibration",
    "process_group",
    "train_epoch",
    "train_model",
]


@dataclass
class TrainResult:
    """The trained model (best validation epoch's weights) and its per-epoch history."""

    model: CTRModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_auc: float = float("nan")


def train_model(
    spec: FeatureSpec,
    train: ModelInputs | TrainingData,
    valid: ModelInputs | TrainingData,
    backbone_cfg: BackboneConfig,
    contrastive_cfg: ContrastiveConfig,
    optim_cfg: OptimizerConfig,
    pairs: PairTable | None = None,
    **options: Unpack[FitOptions],
) -> TrainResult:
    """Train a CTRModel with BCE + λ·CCSS loss; early stopping on validation AUC, best weights restored.

    ``method`` (default CCSS) gives the term weighed by λ = ``contrastive_cfg.weight``; a method that
    uses no pairs (``pwl``, ``hints``) ignores ``pairs``, the redraw and ``shapley_p``.

    ``pairs`` index ``train`` rows; with ``redraw_pairs_each_epoch`` they are redrawn each epoch from
    ``shapley_p`` (seed derived from the run seed and epoch) with the move of ``pairs`` (``move`` when
    no table is given). λ = 0 or no pairs trains the plain baseline (the counterfactual forward is
    skipped entirely). ``on_epoch(epoch, val_auc)`` runs after each epoch's checkpoint
    and may raise (e.g. ``optuna.TrialPruned``) to stop. The options: :class:`FitSettings`.

    ``train`` and ``valid``: :class:`~ccss_pipeline.model.training_data.TrainingData` (or bare arrays in
    memory). A streamed ``train`` (:class:`~ccss_pipeline.model.streaming.ParquetModelInput`) is read a
    row group at a time through a shuffle buffer of ``stream_buffer_rows`` rows (``model.streaming``),
    and each batch's pairs are drawn for its first ``pair_fraction`` rows from ``shapley_p`` (seeded by
    seed, epoch and block of batches) instead of gathered from a table of the whole split; memory stays
    bounded by the buffer. ``valid`` may be one too: it is then scored a row group at a time after each epoch.

    Inside a process group (a worker of :mod:`ccss_pipeline.model.distributed`) the model is wrapped in
    DistributedDataParallel and each rank trains on its own shard of every epoch (its slice of the
    permutation, or its share of the row groups; uneven shards through DDP's ``join``); rank 0 scores
    validation and broadcasts the result, so every rank stops at the same epoch, and rank 0 alone
    writes the checkpoint (atomically). On CUDA each rank uses the device of its ``LOCAL_RANK``.
    """
    splits = training_data(train), training_data(valid)
    job = FitJob(spec, *splits, backbone_cfg, contrastive_cfg, optim_cfg, pairs, FitSettings(**options))
    return Trainer(job).fit()


def _adam(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.Adam:
    """Fused Adam (one kernel for all parameters: ~3x faster steps on CPU), plain Adam where unsupported."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


T = TypeVar("T")


def process_group() -> tuple[int, int]:
    """(rank, world size) of the process group this fit runs in; (0, 1) outside one (the usual case:
    only :mod:`ccss_pipeline.model.distributed` starts the workers that have a group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _from_rank0(obj: T, world: int) -> T:
    """``obj`` as rank 0 holds it, on every rank (validation runs on rank 0 only)."""
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _fit_device(name: str, world: int) -> torch.device:
    """The configured device; on CUDA inside a process group, the device of this rank's ``LOCAL_RANK``."""
    device = resolve_device(name)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


# ----------------------------------------------------------------------------------------- the trainer
class Trainer:
    """One fit (:class:`FitJob`): :meth:`fit` runs the epochs — each trains its batches
    (:meth:`train_one_epoch`), validates on rank 0 (:meth:`validate`), updates early stopping
    (:meth:`update_stopping`) and writes the checkpoint (:meth:`checkpoint`) — and returns the best weights."""

    def __init__(self, job: FitJob) -> None:
        opt = job.optimizer
        self.job, (self.rank, self.world) = job, process_group()
        self.device = _fit_device(opt.device, self.world)
        seed_everything(opt.seed)
        self.model = CTRModel(job.spec, job.backbone).to(self.device)
        self.checks = validations_per_epoch(opt, self.world)
        self.state = FitState(
            self.model, _adam(self.model, opt), EarlyStopping(opt.patience * self.checks), best_state={}
        )
        self.state.keep_best()
        forward: torch.nn.Module = StepForward(self.model)
        if self.world > 1:  # broadcasts rank 0's initial weights; all-reduces gradients in backward
            ids = [self.device.index] if self.device.type == "cuda" else None
            forward = DistributedDataParallel(forward, device_ids=ids)
        self.plan = plan = FitPlan.of(job, self.world)
        self.source = job.train.batch_source(plan.batch_settings(job, self.device, (self.rank, self.world)))
        term = plan.method.bind(job.spec, self.device, plan.pair_rows) if plan.use_term else None
        self.step = TrainStep(
            forward, self.state.optimizer, term, float(job.contrastive.weight), job.contrastive, self.device
        )
        self.val_label = job.valid.label  # read once (a streamed split reads its label column a row group at a time)
        folder = job.options.checkpoint_dir
        self.ckpt_path = Path(folder) / CHECKPOINT_NAME if folder is not None else None
        self.fingerprint = plan.fingerprint(job, self.world)
        self.say = logger.info if self.rank == 0 else logger.debug

    def fit(self) -> TrainResult:
        """Resume where a checkpoint left off, run the epochs left until early stopping, restore the best."""
        if self.ckpt_path is not None:
            self.resume(self.ckpt_path)
        for epoch in range(self.state.epoch + 1, self.job.optimizer.max_epochs + 1):
            if self.state.stopping.stopped:
                break
            self.run_epoch(epoch)
        return self.result()

    def run_epoch(self, epoch: int) -> None:
        """Train ``epoch``, validate, update early stopping, write the checkpoint, then ``on_epoch``."""
        self.source.redraw(epoch)
        self.model.train()
        t0 = time.perf_counter()
        in_epoch = None
        if self.checks > 1:  # rank 0 alone (DDP validates at epoch ends only: validations_per_epoch)
            n_batches = math.ceil(len(self.job.train) / self.plan.batch_size)
            in_epoch = InEpochValidation(n_batches, self.checks, self.validation_auc, self.state, epoch)
        mean_loss = self.train_one_epoch(epoch, in_epoch)
        record = self.validate(epoch, mean_loss, t0, time.perf_counter() - t0)
        self.state.history.append(record)
        self.state.epoch = epoch
        speed, seconds = record["samples_per_sec"], record["seconds"]
        line = "epoch %d loss %.5f val_auc %.5f %.0f samples/s (%.1fs)"
        self.say(line, epoch, mean_loss, record["val_auc"], speed, seconds)
        self.update_stopping(epoch, record["val_auc"], mean_loss, in_epoch)
        self.checkpoint()
        if self.job.options.on_epoch is not None:
            self.job.options.on_epoch(epoch, record["val_auc"])

    def train_one_epoch(self, epoch: int, in_epoch: InEpochValidation | None) -> float:
        """The epoch's batches through :class:`TrainStep`, a batch bar on a terminal (rank 0; nothing in
        logs or CI: the epoch's log line stays); the mean loss."""
        progress = tqdm(
            total=math.ceil(len(self.job.train) / (self.plan.batch_size * self.world)),
            desc=f"epoch {epoch}/{self.job.optimizer.max_epochs}",
            unit="batch",
            leave=False,
            disable=None if self.rank == 0 else True,
            dynamic_ncols=True,
        )
        with progress:
            return train_epoch(self.step, self.source.batches(epoch), progress.update, in_epoch)

    def validation_auc(self) -> float:
        return safe_auc(self.val_label, predict_logits(self.model, self.job.valid))

    def validate(self, epoch: int, mean_loss: float, t0: float, train_seconds: float) -> dict[str, float]:
        """The epoch's record: rank 0 scores validation and every rank gets its record."""
        record: dict[str, float] | None = None
        if self.rank == 0:
            val_auc = self.validation_auc()
            # samples/s: the whole split over the epoch's wall time (all ranks together)
            record = {
                "epoch": epoch,
                "loss": mean_loss,
                "val_auc": val_auc,
                "samples_per_sec": len(self.job.train) / max(train_seconds, 1e-9),
                "seconds": time.perf_counter() - t0,
            }
            if self.world > 1:
                record["world_size"] = self.world
        record = _from_rank0(record, self.world)
        assert record is not None  # rank 0 validated and broadcast it
        return record

    def update_stopping(self, epoch: int, val_auc: float, mean_loss: float, in_epoch: InEpochValidation | None) -> None:
        """Early stopping on the epoch's validation AUC (−loss where it is undefined); the best weights kept."""
        stopping = self.state.stopping
        if in_epoch is not None and in_epoch.stopped_early:
            self.say("early stopping in epoch %d (best epoch %d)", epoch, stopping.best_epoch)
        elif stopping.update(epoch, val_auc if not math.isnan(val_auc) else -mean_loss):
            self.state.keep_best()
        elif stopping.stopped:
            self.say("early stopping after epoch %d (best epoch %d)", epoch, stopping.best_epoch)

    def checkpoint(self) -> None:
        """Rank 0 writes the checkpoint (atomically); no rank runs ahead of the one it would resume from."""
        if self.ckpt_path is None:
            return
        if self.rank == 0:
            self.state.save(self.ckpt_path, self.fingerprint, self.device)
        if self.world > 1:
            dist.barrier()

    def resume(self, path: Path) -> None:
        """Restore the fit from the checkpoint at ``path`` when it belongs to this fit."""
        if self.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temporaries(path)  # left by a kill mid-save
        if self.world > 1:
            dist.barrier()
        ck = read_checkpoint(path, self.device, self.fingerprint, self.job.optimizer.max_epochs)
        if ck is not None:
            self.state.restore(ck, self.device)
            logger.info("resumed from %s at epoch %d", path, self.state.epoch)

    def result(self) -> TrainResult:
        """The best validation's weights (in eval mode), the history, the best epoch and its AUC."""
        self.model.load_state_dict(self.state.best_state)
        self.model.eval()
        best_epoch, history = self.state.stopping.best_epoch, self.state.history
        best_val_auc = (  # the best validation's AUC (mid-epoch with several an epoch); NaN where it was undefined
            float(self.state.stopping.best_score)
            if best_epoch and len(history) >= best_epoch and not math.isnan(history[best_epoch - 1]["val_auc"])
            else float("nan")
        )
        return TrainResult(model=self.model, history=history, best_epoch=best_epoch, best_val_auc=best_val_auc)


def fit_recalibration(
    model: CTRModel, valid: ModelInputs | TrainingData, kind: str, name: str = "model"
) -> Recalibration:
    """The monotone recalibration of ``kind`` for a model just trained, fitted on ``valid`` — the split
    its early stopping used — by minimising the validation LogLoss of its raw logits
    (:meth:`Recalibration.fit`). Logs the validation LogLoss before → after.

    ``model`` must be the raw fit (no recalibration yet): a second map fitted on top of a first would
    be stored as if it were the only one."""
    if not model.recalibration.is_identity:
        raise ValueError(f"{name} already carries {model.recalibration.describe()}: fit on the raw model")
    if kind == "none":
        return Recalibration()
    logits, label = predict_logits(model, valid), valid.label
    fitted = Recalibration.fit(logits, label, kind)
    logger.info(
        "%s: %s, validation LogLoss %.5f -> %.5f",
        name,
        fitted.describe(),
        Recalibration().log_loss(logits, label),
        fitted.log_loss(logits, label),
    )
    return fitted
