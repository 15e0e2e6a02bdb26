"""What a fit carries from epoch to epoch, and the checkpoint that lets a killed fit resume exactly.

The checkpoint holds the model, the optimizer, the best-so-far weights, the early-stopping state, the
history and the torch RNG state, so a killed and resumed CPU run ends with exactly the weights of an
uninterrupted one. It resumes only the fit it was written for: its fingerprint covers the spec, the
data, the pairs and every setting that shapes the weights except ``max_epochs``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from ccss_pipeline.files import atomic_write
from ccss_pipeline.fingerprint import array_hash, content_hash
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.spec import FeatureSpec

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class EarlyStopping:
    """Stop after more than ``patience`` epochs without a better score (validation AUC, or −loss when
    the AUC is undefined); remembers the best epoch and its score."""

    patience: int
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False

    def update(self, epoch: int, score: float) -> bool:
        """Record ``epoch``'s score; True when it is the best so far (its weights are then kept)."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        self.stopped = self.bad_epochs > self.patience
        return False


@dataclass
class FitState:
    """A fit between epochs: what a checkpoint saves and restores."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    stopping: EarlyStopping
    best_state: dict[str, torch.Tensor]
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def keep_best(self) -> None:
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def save(self, path: Path, fingerprint: str, device: torch.device) -> None:
        """Write the checkpoint atomically (a kill mid-save leaves the previous one)."""
        s = self.stopping
        ck: dict[str, Any] = {
            "fingerprint": fingerprint,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_state": self.best_state,
            "best_auc": s.best_score,
            "best_epoch": s.best_epoch,
            "bad_epochs": s.bad_epochs,
            "stopped": s.stopped,
            "history": self.history,
            "rng_cpu": torch.get_rng_state(),
        }
        if device.type == "cuda":
            ck["rng_cuda"] = torch.cuda.get_rng_state()
        atomic_write(path, lambda tmp: torch.save(ck, tmp))

    def restore(self, ck: dict[str, Any], device: torch.device) -> None:
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.best_state = ck["best_state"]
        self.stopping.best_score, self.stopping.best_epoch = ck["best_auc"], ck["best_epoch"]
        self.stopping.bad_epochs, self.stopping.stopped = ck["bad_epochs"], ck["stopped"]
        self.epoch, self.history = ck["epoch"], list(ck["history"])
        torch.set_rng_state(ck["rng_cpu"].cpu())
        if device.type == "cuda" and "rng_cuda" in ck:
            torch.cuda.set_rng_state(ck["rng_cuda"].cpu())


def read_checkpoint(path: Path, device: torch.device, fingerprint: str, max_epochs: int) -> dict | None:
    """The checkpoint at ``path`` if it can resume this fit, else None (with a warning naming the file).

    It resumes only when its fingerprint matches and it has not trained past ``max_epochs``: raising
    the budget continues an earlier fit exactly as an uninterrupted longer one would, lowering it
    must start over.
    """
    if not path.exists():
        return None
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated or foreign file: a cache, so start over rather than fail
        logger.warning(
            "checkpoint %s cannot be read (%s: %s); starting this fit from scratch",
            path,
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
        )
        return None
    if not isinstance(ck, dict) or ck.get("fingerprint") != fingerprint:
        logger.warning("checkpoint %s belongs to a different configuration; starting fresh", path)
        return None
    if int(ck.get("epoch", 0)) > max_epochs:
        logger.warning(
            "checkpoint %s has trained %d epochs, more than max_epochs=%d; starting fresh",
            path,
            int(ck["epoch"]),
            max_epochs,
        )
        return None
    return ck


def pairs_digest(pairs: PairTable | None) -> str | None:
    """Content hash of a pair table (a redrawn table of the same length must not resume a checkpoint)."""
    if pairs is None:
        return None
    return array_hash(
        (pairs.row, pairs.feature, pairs.bucket, pairs.dense, pairs.valid, pairs.f_is_up), prefix=pairs.move
    )


def fit_fingerprint(spec: FeatureSpec, *cfgs: BaseModel, extra: object = None) -> str:
    """What a checkpoint resumes on: the spec, the settings (pydantic models) and ``extra`` (data digests...)."""
    return content_hash([spec.to_dict(), [c.model_dump() for c in cfgs], extra])
