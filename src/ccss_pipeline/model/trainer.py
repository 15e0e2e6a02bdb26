"""The training loop for baseline (λ = 0) and CCSS models: early stopping, resumable, one process or DDP.

The term added to BCE is the monotonicity method's (:mod:`ccss_pipeline.model.methods`: CCSS by
default, or ``pwl``/``hints``): the loop asks the method, bound to the fit, for each batch's logits and
term, and never branches on which method it is.
The pieces live beside it: batches and their pairs (:mod:`ccss_pipeline.model.batches`), the state a
checkpoint saves and the early-stopping rule (:mod:`ccss_pipeline.model.checkpoint`), scoring
(:mod:`ccss_pipeline.model.scoring`, always float32). bf16 autocast is used for training on CUDA only.
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
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.files import sweep_stale_temporaries
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.batches import Batch, device_batches, device_tensors, streamed_batches
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.checkpoint import (
    CHECKPOINT_NAME,
    EarlyStopping,
    FitState,
    fit_fingerprint,
    pairs_digest,
    read_checkpoint,
)
from ccss_pipeline.model.device import resolve_device, seed_everything
from ccss_pipeline.model.losses import total_loss
from ccss_pipeline.model.methods import CCSS, BatchTerm, MonotonicityMethod
from ccss_pipeline.model.scoring import predict_logits, safe_auc
from ccss_pipeline.model.streaming import ParquetModelInput
from ccss_pipeline.model.synthesis import PairLookup, PairTable, draw_pairs
from ccss_pipeline.spec import FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_NAME", "TrainResult", "fit_recalibration", "process_group", "train_model"]


@dataclass
class TrainResult:
    """The trained model (best validation epoch's weights) and its per-epoch history."""

    model: CTRModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_auc: float = float("nan")


def _adam(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.Adam:
    """Fused Adam (one kernel for all parameters: ~3x faster steps on CPU), plain Adam where unsupported."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


class _Step(torch.nn.Module):
    """The training forward as one ``forward`` (plain, or with a batch's counterfactual points), so
    DistributedDataParallel, which hooks ``forward`` only, syncs the gradients of both."""

    def __init__(self, model: CTRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, c: torch.Tensor, d: torch.Tensor, b: torch.Tensor, *points: Any) -> tuple:
        if not points:
            return self.model(c, d, b)
        return self.model.forward_points(c, d, b, *points)


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


def train_model(
    spec: FeatureSpec,
    train: ModelInputs | ParquetModelInput,
    valid: ModelInputs | ParquetModelInput,
    backbone_cfg: BackboneConfig,
    contrastive_cfg: ContrastiveConfig,
    optim_cfg: OptimizerConfig,
    pairs: PairTable | None = None,
    checkpoint_dir: Path | str | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    redraw_pairs_each_epoch: bool = False,
    shapley_p: np.ndarray | None = None,
    move: str = "centre",
    stream_buffer_rows: int = 262_144,
    method: MonotonicityMethod | None = None,
) -> TrainResult:
    """Train a CTRModel with BCE + λ·CCSS loss; early stopping on validation AUC, best weights restored.

    ``method`` (default CCSS) gives the term weighed by λ = ``contrastive_cfg.weight``; a method that
    uses no pairs (``pwl``, ``hints``) ignores ``pairs``, the redraw and ``shapley_p``.

    ``pairs`` index ``train`` rows; with ``redraw_pairs_each_epoch`` they are redrawn each epoch from
    ``shapley_p`` (seed derived from the run seed and epoch) with the move of ``pairs`` (``move`` when
    no table is given). λ = 0 or no pairs trains the plain baseline (the counterfactual forward is
    skipped entirely). ``on_epoch(epoch, val_auc)`` runs after each epoch's checkpoint
    and may raise (e.g. ``optuna.TrialPruned``) to stop.

    ``train`` may be a :class:`ParquetModelInput`: the table is then streamed a row group at a time
    through a shuffle buffer of ``stream_buffer_rows`` rows (``model.streaming``), and each batch's
    pairs are drawn for its first ``pair_fraction`` rows from ``shapley_p`` (seeded by seed, epoch and
    block of batches) instead of gathered from a table of the whole split; memory stays bounded by the
    buffer. ``valid`` may be one too: it is then scored a row group at a time after each epoch.

    Inside a process group (a worker of :mod:`ccss_pipeline.model.distributed`) the model is wrapped in
    DistributedDataParallel and each rank trains on its own shard of every epoch (its slice of the
    permutation, or its share of the row groups; uneven shards through DDP's ``join``); rank 0 scores
    validation and broadcasts the result, so every rank stops at the same epoch, and rank 0 alone
    writes the checkpoint (atomically). On CUDA each rank uses the device of its ``LOCAL_RANK``.
    """
    rank, world = process_group()
    device = resolve_device(optim_cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    seed_everything(optim_cfg.seed)
    model = CTRModel(spec, backbone_cfg).to(device)
    checks = _validations_per_epoch(optim_cfg, world)
    state = FitState(model, _adam(model, optim_cfg), EarlyStopping(optim_cfg.patience * checks), best_state={})
    state.keep_best()
    step: torch.nn.Module = _Step(model)
    if world > 1:  # broadcasts rank 0's initial weights; all-reduces gradients in backward
        step = DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)

    lam = float(contrastive_cfg.weight)
    method = method or CCSS()
    pairs = pairs if method.uses_pairs else None
    streamed = train if isinstance(train, ParquetModelInput) else None
    in_memory = train if isinstance(train, ModelInputs) else None
    use_pairs = (
        lam > 0
        and method.uses_pairs
        and (pairs is not None or redraw_pairs_each_epoch or (streamed is not None and shapley_p is not None))
    )
    use_term = lam > 0 and (use_pairs or not method.uses_pairs)  # λ = 0: the plain BCE, no extra forward
    if redraw_pairs_each_epoch and use_pairs and shapley_p is None:
        raise ValueError("redraw_pairs_each_epoch needs shapley_p (the feature-draw probabilities)")
    if streamed is not None and use_pairs and shapley_p is None:
        raise ValueError("training streamed from parquet draws its pairs per batch: it needs shapley_p")
    n = len(train)
    tensors = device_tensors(in_memory, device) if in_memory is not None else None
    lookup = PairLookup(pairs, n, spec, device) if use_pairs and pairs is not None and streamed is None else None
    move = pairs.move if pairs is not None else move
    # the global batch: W ranks take batch_size / W rows each per step, so a step (and an epoch's
    # number of steps) means what it means on one process and the optimiser settings carry over
    bs = max(1, optim_cfg.batch_size_for(n) // world)
    n_pair_rows = max(1, math.ceil(contrastive_cfg.pair_fraction_for(n) * bs))
    term = method.bind(spec, device, n_pair_rows) if use_term else None
    val_label = valid.label  # read once (a streamed split reads its label column a row group at a time)

    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    fp = fit_fingerprint(
        spec,
        backbone_cfg,
        contrastive_cfg,
        optim_cfg.model_copy(update={"max_epochs": 0}),
        extra=[
            train.digest(),
            valid.digest(),
            None if streamed is not None else pairs_digest(pairs),
            redraw_pairs_each_epoch,
            move,
            streamed is not None and stream_buffer_rows,
        ]
        + ([{"world_size": world}] if world > 1 else [])
        + ([method.fingerprint()] if use_term and method.fingerprint() else []),  # CCSS adds nothing
    )
    if ckpt_path is not None:
        _resume(state, ckpt_path, fp, optim_cfg.max_epochs, device, rank, world)

    say = logger.info if rank == 0 else logger.debug
    for epoch in range(state.epoch + 1, optim_cfg.max_epochs + 1):
        if state.stopping.stopped:
            break
        if use_pairs and redraw_pairs_each_epoch and in_memory is not None and shapley_p is not None:
            drawn = draw_pairs(
                in_memory.bucket,
                in_memory.dense,
                in_memory.label,
                spec,
                shapley_p,
                seed=optim_cfg.seed * 100_003 + epoch,
                move=move,
            )
            lookup = PairLookup(drawn, n, spec, device)
        model.train()
        t0 = time.perf_counter()
        if tensors is not None:
            gen = torch.Generator().manual_seed(optim_cfg.seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=gen).to(device)
            if world > 1:
                perm = perm[rank::world]  # this rank's shard of the epoch
            batches = device_batches(tensors, perm, bs, lookup, n_pair_rows)
        else:
            assert streamed is not None  # train is one of the two kinds
            batches = streamed_batches(
                streamed,
                spec,
                bs,
                optim_cfg.seed,
                epoch,
                stream_buffer_rows,
                device,
                n_pair_rows if use_pairs else 0,
                shapley_p,
                move,
                shard=(rank, world),
            )
        # a batch bar on a terminal (rank 0), nothing in logs or CI; the epoch line below stays
        progress = tqdm(
            total=math.ceil(n / (bs * world)),
            desc=f"epoch {epoch}/{optim_cfg.max_epochs}",
            unit="batch",
            leave=False,
            disable=None if rank == 0 else True,
            dynamic_ncols=True,
        )
        in_epoch = None
        if checks > 1:  # rank 0 alone (DDP validates at epoch ends only: _validations_per_epoch)
            in_epoch = _InEpochValidation(
                math.ceil(n / bs), checks, lambda: safe_auc(val_label, predict_logits(model, valid)), state, epoch
            )
        with progress:
            mean_loss = _train_epoch(
                step, state.optimizer, batches, term, lam, contrastive_cfg, device, world, progress.update, in_epoch
            )
        train_seconds = time.perf_counter() - t0

        record: dict[str, float] | None = None
        if rank == 0:
            val_auc = safe_auc(val_label, predict_logits(model, valid))
            # samples/s: the whole split over the epoch's wall time (all ranks together)
            record = {
                "epoch": epoch,
                "loss": mean_loss,
                "val_auc": val_auc,
                "samples_per_sec": n / max(train_seconds, 1e-9),
                "seconds": time.perf_counter() - t0,
            }
            if world > 1:
                record["world_size"] = world
        record = _from_rank0(record, world)
        assert record is not None  # rank 0 validated and broadcast it
        val_auc = record["val_auc"]
        state.history.append(record)
        state.epoch = epoch
        say(
            "epoch %d loss %.5f val_auc %.5f %.0f samples/s (%.1fs)",
            epoch,
            mean_loss,
            val_auc,
            record["samples_per_sec"],
            record["seconds"],
        )
        if in_epoch is not None and in_epoch.stopped_early:
            say("early stopping in epoch %d (best epoch %d)", epoch, state.stopping.best_epoch)
        elif state.stopping.update(epoch, val_auc if not math.isnan(val_auc) else -mean_loss):
            state.keep_best()
        elif state.stopping.stopped:
            say("early stopping after epoch %d (best epoch %d)", epoch, state.stopping.best_epoch)

        if ckpt_path is not None and rank == 0:
            state.save(ckpt_path, fp, device)
        if ckpt_path is not None and world > 1:
            dist.barrier()  # no rank runs ahead of the checkpoint it would resume from
        if on_epoch is not None:
            on_epoch(epoch, val_auc)

    model.load_state_dict(state.best_state)
    model.eval()
    best_epoch, history = state.stopping.best_epoch, state.history
    best_val_auc = (  # the best validation's AUC (mid-epoch with several an epoch); NaN where it was undefined
        float(state.stopping.best_score)
        if best_epoch and len(history) >= best_epoch and not math.isnan(history[best_epoch - 1]["val_auc"])
        else float("nan")
    )
    return TrainResult(model=model, history=history, best_epoch=best_epoch, best_val_auc=best_val_auc)


def _validations_per_epoch(optim_cfg: OptimizerConfig, world: int) -> int:
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
class _InEpochValidation:
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


def fit_recalibration(
    model: CTRModel, valid: ModelInputs | ParquetModelInput, kind: str, name: str = "model"
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


def _resume(
    state: FitState, path: Path, fingerprint: str, max_epochs: int, device: torch.device, rank: int, world: int
) -> None:
    """Restore ``state`` from the checkpoint at ``path`` when it belongs to this fit."""
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(path)  # left by a kill mid-save
    if world > 1:
        dist.barrier()
    ck = read_checkpoint(path, device, fingerprint, max_epochs)
    if ck is not None:
        state.restore(ck, device)
        logger.info("resumed from %s at epoch %d", path, state.epoch)


def _train_epoch(
    step: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Batch],
    term: BatchTerm | None,
    lam: float,
    contrastive_cfg: ContrastiveConfig,
    device: torch.device,
    world: int,
    on_batch: Callable[[], object],
    in_epoch: _InEpochValidation | None = None,
) -> float:
    """One pass over ``batches``: BCE (+ λ · the method's ``term`` where it gives one; no term: the plain
    BCE); the mean loss over every rank's batches. ``in_epoch``: validations inside the epoch, which may
    end it early (one process only)."""
    use_amp = device.type == "cuda"
    totals = torch.zeros(2, device=device)  # loss sum, batches
    with cast(DistributedDataParallel, step).join() if world > 1 else nullcontext():  # shards may differ by a batch
        for batch in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                if term is None:
                    z_o, _ = step(batch.cat, batch.dense, batch.bucket)
                    extra = None
                else:
                    z_o, extra = term(step, batch, contrastive_cfg)
                loss = total_loss(z_o, batch.label, extra, lam)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals[0] += loss.detach().float()
            totals[1] += 1
            on_batch()
            if in_epoch is not None and in_epoch.after_batch():
                break
    if world > 1:
        dist.all_reduce(totals)
    return float(totals[0].item()) / max(float(totals[1].item()), 1.0)
