"""The final fits on one process, or on several with DistributedDataParallel (issue 14).

Several processes are started by torch's own elastic launcher (``elastic_launch``, what ``torchrun``
runs), so the same code runs on a laptop, on a multi-GPU box and on several machines: on one machine
the workers meet at a rendezvous on a free loopback port (``torchrun --standalone``); on several, every
machine runs the same ``kedro run`` and the launchers meet at ``master_addr:master_port`` under
``run_id`` (``torchrun --nnodes N --rdzv-endpoint ...``). Each worker joins the process group (gloo on
CPU, NCCL on GPU), trains every fit on its shard of the data (:func:`ccss_pipeline.model.trainer.train_model`
sees the group) and returns the fitted weights, which are identical on every rank; rank 0 alone writes
checkpoints. The Kedro process gets the weights back and saves the models as a one-process run would.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ccss_pipeline.config import BackboneConfig, ContrastiveConfig, DistributedConfig, OptimizerConfig
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.methods import MonotonicityMethod
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.model.trainer import TrainResult, train_model
from ccss_pipeline.model.training_data import TrainingData
from ccss_pipeline.spec import FeatureSpec, ModelInputs

logger = logging.getLogger(__name__)


class DistributedTrainingError(RuntimeError):
    """A worker of a distributed fit failed; the message carries its rank and error."""


@dataclass(frozen=True)
class Fit:
    """One model to train: its settings, whether it trains with the pairs (CCSS), its checkpoint folder and
    the monotonicity method whose term λ weighs (None: CCSS)."""

    key: str
    backbone: BackboneConfig
    contrastive: ContrastiveConfig
    optimizer: OptimizerConfig
    with_pairs: bool
    checkpoint_dir: Path | None = None
    redraw_pairs_each_epoch: bool = False
    method: MonotonicityMethod | None = None


@dataclass(frozen=True)
class FitData:
    """What every fit trains and validates on (in memory, or streamed from parquet)."""

    spec: FeatureSpec
    train: ModelInputs | TrainingData
    valid: ModelInputs | TrainingData
    pairs: PairTable | None
    shapley_p: np.ndarray
    move: str
    stream_buffer_rows: int


def _train(fit: Fit, data: FitData) -> TrainResult:
    return train_model(
        data.spec,
        data.train,
        data.valid,
        fit.backbone,
        fit.contrastive,
        fit.optimizer,
        pairs=data.pairs if fit.with_pairs else None,
        checkpoint_dir=fit.checkpoint_dir,
        redraw_pairs_each_epoch=fit.redraw_pairs_each_epoch and fit.with_pairs,
        shapley_p=data.shapley_p,
        move=data.move,
        stream_buffer_rows=data.stream_buffer_rows,
        method=fit.method,
    )


def run_fits(fits: list[Fit], data: FitData, distributed: DistributedConfig) -> dict[str, TrainResult]:
    """Every fit, in this process or (``distributed.enabled``) on DDP workers; keyed by ``Fit.key``."""
    if not distributed.enabled:
        return {fit.key: _train(fit, data) for fit in fits}
    return launch_fits(fits, data, distributed)


def launch_fits(fits: list[Fit], data: FitData, distributed: DistributedConfig) -> dict[str, TrainResult]:
    """The fits on ``nproc_per_node`` DDP workers per machine, started by torch's elastic launcher."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    devices = {resolve_device(fit.optimizer.device).type for fit in fits}
    backend = distributed.backend
    if backend == "auto":
        backend = "nccl" if devices == {"cuda"} else "gloo"
    one_machine = distributed.nnodes == 1
    config = LaunchConfig(
        min_nodes=distributed.nnodes,
        max_nodes=distributed.nnodes,
        nproc_per_node=distributed.nproc_per_node,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0" if one_machine else f"{distributed.master_addr}:{distributed.master_port}",
        rdzv_configs={"timeout": distributed.timeout_s},
        run_id=uuid.uuid4().hex if one_machine else distributed.run_id,
        max_restarts=0,
        start_method="spawn",
        local_addr="127.0.0.1" if one_machine else None,
    )
    # the machine's cores shared between this machine's workers, as torchrun's OMP_NUM_THREADS does
    threads = max(1, torch.get_num_threads() // distributed.nproc_per_node)
    logger.info(
        "training %d model(s) with DistributedDataParallel: %d process(es) x %d machine(s), %s backend, "
        "%d thread(s) each",
        len(fits),
        distributed.nproc_per_node,
        distributed.nnodes,
        backend,
        threads,
    )
    try:
        returned = elastic_launch(config, _worker)(fits, data, backend, threads, distributed.timeout_s)
    except ChildFailedError as exc:
        raise DistributedTrainingError(f"distributed training failed: {exc}") from exc
    first = returned[min(returned)]  # every rank returns the same weights
    out = {}
    for fit in fits:
        got = first[fit.key]
        model = CTRModel(data.spec, fit.backbone)
        model.load_state_dict(got["state_dict"])
        model.eval()
        out[fit.key] = TrainResult(
            model=model, history=got["history"], best_epoch=got["best_epoch"], best_val_auc=got["best_val_auc"]
        )
    return out


def _worker(fits: list[Fit], data: FitData, backend: str, threads: int, timeout_s: int) -> dict[str, dict[str, Any]]:
    """One DDP rank: join the group, train every fit on this rank's shard, return the weights."""
    import torch.distributed as dist
    from torch.distributed.elastic.multiprocessing.errors import record

    @record  # a failure reaches the launcher with its traceback
    def run() -> dict[str, dict[str, Any]]:
        rank = int(os.environ["RANK"])
        logging.basicConfig(level=logging.INFO, format=f"[rank {rank}] %(asctime)s %(name)s: %(message)s")
        torch.set_num_threads(threads)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
        try:
            out = {}
            for fit in fits:
                result = _train(fit, data)
                out[fit.key] = {
                    "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "best_val_auc": result.best_val_auc,
                }
            return out
        finally:
            dist.destroy_process_group()

    weights = run()
    assert weights is not None  # @record passes run's return value through (typed Optional)
    return weights
