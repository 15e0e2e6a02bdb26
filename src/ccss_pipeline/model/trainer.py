"""Training loop for baseline (λ = 0) and CCSS models, with early stopping and resumable checkpoints.

Hot-path rules: data lives on the device as tensors (moved once); batches are index slices of a seeded
permutation; no ``.item()`` inside the batch loop (the loss is accumulated on the device and synced once
per epoch); pairs are gathered per batch from per-row lookup tensors with static shapes (rows without a
pair are masked), so nothing forces a host sync on CUDA. bf16 autocast is used for training on CUDA only;
scoring (validation, evaluation, search) is always float32: bf16 hides wrong steps below its resolution.
A training table larger than memory is streamed instead (:mod:`ccss_pipeline.model.streaming`): batches
come from parquet row groups through a seeded shuffle buffer and draw their pairs as they come; the
step itself is the same code.

Determinism/resume: each epoch's permutation (and pair redraw) is derived from (seed, epoch), and the
checkpoint carries model, optimizer, best-so-far weights, history and the torch RNG state, so a killed
and resumed CPU run ends with exactly the weights of an uninterrupted one.
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

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, OptimizerConfig
from ccss_pipeline.files import atomic_write, sweep_stale_temporaries
from ccss_pipeline.fingerprint import array_hash, content_hash
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.device import resolve_device, seed_everything
from ccss_pipeline.model.losses import counterfactual_loss, total_loss
from ccss_pipeline.model.streaming import ParquetModelInput, shuffled_batches
from ccss_pipeline.model.synthesis import PairLookup, PairTable, draw_pairs
from ccss_pipeline.spec import FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainResult:
    """The trained model (best validation epoch's weights) and its per-epoch history."""

    model: CTRModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_auc: float = float("nan")


# ----------------------------------------------------------------------------------------- scoring
def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _logits_np(model: CTRModel, cat: np.ndarray, dense: np.ndarray, bucket: np.ndarray, batch_size: int,
               device: torch.device | None = None) -> np.ndarray:
    device = device or _model_device(model)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, cat.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        with torch.autocast(device.type, enabled=False):  # float32 scoring on every device
            z, _ = model(
                torch.as_tensor(np.ascontiguousarray(cat[sl]), dtype=torch.long, device=device),
                torch.as_tensor(np.ascontiguousarray(dense[sl]), dtype=torch.float32, device=device),
                torch.as_tensor(np.ascontiguousarray(bucket[sl]), dtype=torch.long, device=device),
            )
        out.append(z.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def predict_logits(model: CTRModel, inputs: ModelInputs | ParquetModelInput, batch_size: int = 8192) -> np.ndarray:
    """Logits for every row (eval mode, no grad, batched); a table streamed from parquet is scored a
    row group at a time (memory: one row group and the logits)."""
    if isinstance(inputs, ParquetModelInput):
        parts = [predict_logits(model, group, batch_size) for group in inputs.iter_row_groups()]
        return np.concatenate(parts) if parts else np.zeros(0)
    return _logits_np(model, inputs.cat, inputs.dense, inputs.bucket, batch_size)


def predict_proba(model: CTRModel, inputs: ModelInputs | ParquetModelInput, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities for every row."""
    return 1.0 / (1.0 + np.exp(-predict_logits(model, inputs, batch_size)))


def logit_fn(model: CTRModel, device: torch.device | str | None = None, batch_size: int = 16384
             ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """A callable (cat, dense, bucket) -> logits; moves the model to ``device`` once."""
    dev = resolve_device(device) if isinstance(device, str) else (device or _model_device(model))
    model.to(dev)
    return lambda cat, dense, bucket: _logits_np(model, cat, dense, bucket, batch_size, dev)


def score_fn(model: CTRModel, device: torch.device | str | None = None, batch_size: int = 16384
             ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """A callable (cat, dense, bucket) -> probabilities, for fast evaluation (counterfactual sweeps)."""
    f = logit_fn(model, device, batch_size)
    return lambda cat, dense, bucket: 1.0 / (1.0 + np.exp(-f(cat, dense, bucket)))


def safe_auc(label: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    if len(np.unique(label)) < 2:
        return float("nan")
    return float(roc_auc_score(label, score))


# -------------------------------------------------------------------------------------- checkpoints
def _atomic_save(obj: object, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _read_checkpoint(path: Path, device: torch.device, fingerprint: str, max_epochs: int) -> dict | None:
    """The checkpoint at ``path`` if it can resume this fit, else None (with a warning naming the file).

    It resumes only when its fingerprint (spec, data, pairs and every setting that shapes the weights
    except ``max_epochs``) matches and it has not trained past ``max_epochs``: raising the budget
    continues an earlier fit exactly as an uninterrupted longer one would, lowering it must start over.
    """
    if not path.exists():
        return None
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated or foreign file: a cache, so start over rather than fail
        logger.warning("checkpoint %s cannot be read (%s: %s); starting this fit from scratch", path,
                       type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        return None
    if not isinstance(ck, dict) or ck.get("fingerprint") != fingerprint:
        logger.warning("checkpoint %s belongs to a different configuration; starting fresh", path)
        return None
    if int(ck.get("epoch", 0)) > max_epochs:
        logger.warning("checkpoint %s has trained %d epochs, more than max_epochs=%d; starting fresh", path,
                       int(ck["epoch"]), max_epochs)
        return None
    return ck


def _pairs_digest(pairs: PairTable | None) -> str | None:
    """Content hash of a pair table (a redrawn table of the same length must not resume a checkpoint)."""
    if pairs is None:
        return None
    return array_hash((pairs.row, pairs.feature, pairs.bucket, pairs.dense, pairs.valid, pairs.f_is_up), prefix=pairs.move)


def _fingerprint(spec: FeatureSpec, *cfgs: object, extra: object = None) -> str:
    return content_hash([spec.to_dict(), [c.model_dump() for c in cfgs], extra])


def _to_device(a: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # a read-only array (a column of a parquet-backed frame) is copied once; torch cannot share it
    return torch.as_tensor(np.require(a, requirements=["C", "W"]), dtype=dtype).to(device)


# ------------------------------------------------------------------------------------------ training
def _adam(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.Adam:
    """Fused Adam (one kernel for all parameters: ~3x faster steps on CPU), plain Adam where unsupported."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


@dataclass(frozen=True)
class _BatchPairs:
    """One batch's pair arrays (the first rows of the batch have them): as :class:`PairLookup`'s rows."""

    template: object
    n_points: int
    ints: torch.Tensor
    floats: torch.Tensor


def _device_batches(tensors: tuple[torch.Tensor, ...], perm: torch.Tensor, bs: int, lookup: PairLookup | None,
                    n_pair_rows: int) -> Iterator[tuple]:
    """Batches as index slices of a permutation of device-resident tensors (the in-memory path)."""
    cat, dense, bucket, label = tensors
    for start in range(0, perm.shape[0], bs):
        idx = perm[start : start + bs]
        pair = None
        if lookup is not None:
            pidx = idx[: min(n_pair_rows, idx.shape[0])]
            pair = _BatchPairs(lookup.template, lookup.n_points, lookup.ints[pidx], lookup.floats[pidx])
        yield cat[idx], dense[idx], bucket[idx], label[idx], pair


#: batches whose pairs are drawn in one call on the streaming path (one draw per batch costs ~20% throughput)
_PAIR_BLOCK = 64


def _streamed_batches(source: ParquetModelInput, spec: FeatureSpec, bs: int, seed: int, epoch: int, buffer_rows: int,
                      device: torch.device, n_pair_rows: int, shapley_p: np.ndarray | None, move: str,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[tuple]:
    """Batches read from parquet through the shuffle buffer, their pairs drawn as they come (the
    streaming path): for the first ``n_pair_rows`` rows of each batch, ``_PAIR_BLOCK`` batches at a time,
    seeded by (seed, epoch, block) and, on a rank of several, the rank. ``shard``: (rank, world size)."""
    block: list[ModelInputs] = []
    n_blocks = 0
    for batch in shuffled_batches(source, bs, seed, epoch, max(buffer_rows, bs), shard=shard):
        block.append(batch)
        if len(block) == _PAIR_BLOCK:
            yield from _block_with_pairs(block, n_blocks, spec, seed, epoch, device, n_pair_rows, shapley_p, move, shard)
            block, n_blocks = [], n_blocks + 1
    if block:
        yield from _block_with_pairs(block, n_blocks, spec, seed, epoch, device, n_pair_rows, shapley_p, move, shard)


def _block_with_pairs(block: list[ModelInputs], number: int, spec: FeatureSpec, seed: int, epoch: int,
                      device: torch.device, n_pair_rows: int, shapley_p: np.ndarray | None, move: str,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[tuple]:
    lookup, offsets = None, [0]
    if n_pair_rows > 0:
        heads = [b.take(slice(0, min(n_pair_rows, len(b)))) for b in block]
        offsets = list(np.cumsum([0] + [len(h) for h in heads]))
        stream = [int(seed), int(epoch), int(number)] + ([int(shard[0])] if shard[1] > 1 else [])
        drawn = draw_pairs(np.concatenate([h.bucket for h in heads]), np.concatenate([h.dense for h in heads]),
                           np.concatenate([h.label for h in heads]), spec, shapley_p,
                           seed=np.random.default_rng(stream), move=move)
        lookup = PairLookup(drawn, offsets[-1], spec, device)
    for i, batch in enumerate(block):
        pair = None
        if lookup is not None:
            rows = slice(int(offsets[i]), int(offsets[i + 1]))
            pair = _BatchPairs(lookup.template, lookup.n_points, lookup.ints[rows], lookup.floats[rows])
        yield (_to_device(batch.cat, torch.long, device), _to_device(batch.dense, torch.float32, device),
               _to_device(batch.bucket, torch.long, device), _to_device(batch.label, torch.float32, device), pair)


class _Step(torch.nn.Module):
    """The training forward as one ``forward`` (plain, or with a batch's counterfactual points), so
    DistributedDataParallel, which hooks ``forward`` only, syncs the gradients of both."""

    def __init__(self, model: CTRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, c: torch.Tensor, d: torch.Tensor, b: torch.Tensor, *points: object) -> tuple:
        if not points:
            return self.model(c, d, b)
        return self.model.forward_points(c, d, b, *points)


def process_group() -> tuple[int, int]:
    """(rank, world size) of the process group this fit runs in; (0, 1) outside one (the usual case:
    only :mod:`ccss_pipeline.model.distributed` starts the workers that have a group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _from_rank0(obj: object, world: int) -> object:
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
) -> TrainResult:
    """Train a CTRModel with BCE + λ·CCSS loss; early stopping on validation AUC, best weights restored.

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
    opt = _adam(model, optim_cfg)
    step: torch.nn.Module = _Step(model)
    if world > 1:  # broadcasts rank 0's initial weights; all-reduces gradients in backward
        step = DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)

    lam = float(contrastive_cfg.weight)
    streamed = train if isinstance(train, ParquetModelInput) else None
    use_ccss = lam > 0 and (pairs is not None or redraw_pairs_each_epoch or (streamed is not None and shapley_p is not None))
    if redraw_pairs_each_epoch and use_ccss and shapley_p is None:
        raise ValueError("redraw_pairs_each_epoch needs shapley_p (the feature-draw probabilities)")

    n = len(train)
    if streamed is not None and use_ccss and shapley_p is None:
        raise ValueError("training streamed from parquet draws its pairs per batch: it needs shapley_p")
    tensors = None if streamed is not None else (
        _to_device(train.cat, torch.long, device), _to_device(train.dense, torch.float32, device),
        _to_device(train.bucket, torch.long, device), _to_device(train.label, torch.float32, device))
    lookup = PairLookup(pairs, n, spec, device) if use_ccss and pairs is not None and streamed is None else None
    move = pairs.move if pairs is not None else move

    # the global batch: W ranks take batch_size / W rows each per step, so a step (and an epoch's
    # number of steps) means what it means on one process and the optimiser settings carry over
    bs = max(1, optim_cfg.batch_size // world)
    n_pair_rows = max(1, math.ceil(contrastive_cfg.pair_fraction * bs))
    use_amp = device.type == "cuda"

    val_label = valid.label  # read once (a streamed split reads its label column a row group at a time)
    history: list[dict[str, float]] = []
    best_auc, best_epoch, bad_epochs, start_epoch, stopped = -math.inf, 0, 0, 0, False
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    fp = _fingerprint(spec, backbone_cfg, contrastive_cfg, optim_cfg.model_copy(update={"max_epochs": 0}),
                      extra=[train.digest(), valid.digest(), None if streamed is not None else _pairs_digest(pairs),
                             redraw_pairs_each_epoch, move, streamed is not None and stream_buffer_rows]
                      + ([{"world_size": world}] if world > 1 else []))
    if ckpt_path is not None:
        if rank == 0:
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temporaries(ckpt_path)  # left by a kill mid-save
        if world > 1:
            dist.barrier()
        ck = _read_checkpoint(ckpt_path, device, fp, optim_cfg.max_epochs)
        if ck is not None:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            best_state = ck["best_state"]
            best_auc, best_epoch, bad_epochs = ck["best_auc"], ck["best_epoch"], ck["bad_epochs"]
            start_epoch, stopped, history = ck["epoch"], ck["stopped"], list(ck["history"])
            torch.set_rng_state(ck["rng_cpu"].cpu())
            if device.type == "cuda" and "rng_cuda" in ck:
                torch.cuda.set_rng_state(ck["rng_cuda"].cpu())
            logger.info("resumed from %s at epoch %d", ckpt_path, start_epoch)

    for epoch in range(start_epoch + 1, optim_cfg.max_epochs + 1):
        if stopped:
            break
        if use_ccss and redraw_pairs_each_epoch and streamed is None:
            drawn = draw_pairs(train.bucket, train.dense, train.label, spec, shapley_p,
                               seed=optim_cfg.seed * 100_003 + epoch, move=move)
            lookup = PairLookup(drawn, n, spec, device)
        model.train()
        t0 = time.perf_counter()
        perm = None
        if streamed is None:
            gen = torch.Generator().manual_seed(optim_cfg.seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=gen).to(device)
            if world > 1:
                perm = perm[rank::world]  # this rank's shard of the epoch
        totals = torch.zeros(2, device=device)  # loss sum, batches
        if streamed is None:
            batches = _device_batches(tensors, perm, bs, lookup, n_pair_rows)
        else:
            batches = _streamed_batches(streamed, spec, bs, optim_cfg.seed, epoch, stream_buffer_rows, device,
                                        n_pair_rows if use_ccss else 0, shapley_p, move, shard=(rank, world))
        # a batch bar on a terminal (rank 0), nothing in logs or CI; the epoch line below stays
        progress = tqdm(total=math.ceil(n / (bs * world)), desc=f"epoch {epoch}/{optim_cfg.max_epochs}", unit="batch",
                        leave=False, disable=None if rank == 0 else True, dynamic_ncols=True)
        with progress, step.join() if world > 1 else nullcontext():  # shards may differ by a batch
            for c, d, b, y, pair in batches:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    if pair is None:
                        z_o, _ = step(c, d, b)
                        loss = total_loss(z_o, y, None, 0.0)
                    else:
                        p, q = pair.ints.shape[0], pair.n_points
                        pi, pf = pair.ints, pair.floats
                        # the first p rows of a batch are a random subset, as the batch is in random order
                        z_o, z_pts, h_o, h_pts = step(c, d, b, p, pi[:, 1], pi[:, 2 : 2 + q], pf[:, 1 : 1 + q])
                        lc = counterfactual_loss(pair.template, z_o[:p], z_pts, h_o[:p], h_pts, pf[:, 0],
                                                 pf[:, 1 + q :], pi[:, 2 + q] > 0, pi[:, 0] > 0, contrastive_cfg)
                        loss = total_loss(z_o, y, lc, lam)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                totals[0] += loss.detach().float()
                totals[1] += 1
                progress.update()
        if world > 1:
            dist.all_reduce(totals)  # the epoch's loss over every rank's batches
        mean_loss = float(totals[0].item()) / max(float(totals[1].item()), 1.0)
        train_seconds = time.perf_counter() - t0

        record = None
        if rank == 0:
            val_auc = safe_auc(val_label, predict_logits(model, valid))
            # samples/s: the whole split over the epoch's wall time (all ranks together)
            record = {"epoch": epoch, "loss": mean_loss, "val_auc": val_auc,
                      "samples_per_sec": n / max(train_seconds, 1e-9), "seconds": time.perf_counter() - t0}
            if world > 1:
                record["world_size"] = world
        record = _from_rank0(record, world)
        val_auc, seconds = record["val_auc"], record["seconds"]
        history.append(record)
        (logger.info if rank == 0 else logger.debug)("epoch %d loss %.5f val_auc %.5f %.0f samples/s (%.1fs)", epoch,
                                                     mean_loss, val_auc, record["samples_per_sec"], seconds)

        score = val_auc if not math.isnan(val_auc) else -mean_loss
        if score > best_auc:
            best_auc, best_epoch, bad_epochs = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            stopped = bad_epochs > optim_cfg.patience
            if stopped:
                (logger.info if rank == 0 else logger.debug)("early stopping after epoch %d (best epoch %d)", epoch, best_epoch)

        if ckpt_path is not None and rank == 0:
            ck = {"fingerprint": fp, "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                  "best_state": best_state, "best_auc": best_auc, "best_epoch": best_epoch,
                  "bad_epochs": bad_epochs, "stopped": stopped, "history": history,
                  "rng_cpu": torch.get_rng_state()}
            if device.type == "cuda":
                ck["rng_cuda"] = torch.cuda.get_rng_state()
            _atomic_save(ck, ckpt_path)
        if ckpt_path is not None and world > 1:
            dist.barrier()  # no rank runs ahead of the checkpoint it would resume from
        if on_epoch is not None:
            on_epoch(epoch, val_auc)

    model.load_state_dict(best_state)
    model.eval()
    best_val_auc = float(history[best_epoch - 1]["val_auc"]) if best_epoch and len(history) >= best_epoch else float("nan")
    return TrainResult(model=model, history=history, best_epoch=best_epoch, best_val_auc=best_val_auc)
