"""Scoring a trained model: logits and probabilities in batches, always in float32, and the AUC.

Validation, evaluation and the search all score through here: bf16 (used for training on CUDA) would
hide wrong monotonicity steps below its resolution, so scoring never autocasts. A split is scored a chunk
at a time (:meth:`~ccss_pipeline.model.training_data.TrainingData.chunks`: the arrays in memory whole,
a split streamed from parquet a row group at a time).
Every logit is the module's :meth:`~ccss_pipeline.model.backbones.CTRModel.served_logit`: the model's
monotone recalibration, when it has one, is applied here for every caller (the raw network runs in
float32; the recalibration's affine map in float64).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.training_data import TrainingData, training_data
from ccss_pipeline.spec import ModelInputs


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _logits_np(
    model: CTRModel,
    cat: np.ndarray,
    dense: np.ndarray,
    bucket: np.ndarray,
    batch_size: int,
    device: torch.device | None = None,
) -> np.ndarray:
    device = device or _model_device(model)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, cat.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        with torch.autocast(device.type, enabled=False):  # float32 scoring on every device
            z = model.served_logit(
                torch.as_tensor(np.require(cat[sl], requirements=["C", "W"]), dtype=torch.long, device=device),
                torch.as_tensor(np.require(dense[sl], requirements=["C", "W"]), dtype=torch.float32, device=device),
                torch.as_tensor(np.require(bucket[sl], requirements=["C", "W"]), dtype=torch.long, device=device),
            )
        out.append(z.to(torch.float64).cpu())  # a recalibrated logit is float64 already; float32 widens exactly
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def predict_logits(model: CTRModel, inputs: ModelInputs | TrainingData, batch_size: int = 8192) -> np.ndarray:
    """Logits for every row (eval mode, no grad, batched; recalibrated when the model carries a
    recalibration), a chunk of the split at a time (streamed from parquet: memory of one row group and
    the logits)."""
    chunks = training_data(inputs).chunks()
    parts = [_logits_np(model, c.cat, c.dense, c.bucket, batch_size) for c in chunks]
    if len(parts) == 1:
        return parts[0]  # a split in memory is one chunk: no copy
    return np.concatenate(parts) if parts else np.zeros(0)


def predict_proba(model: CTRModel, inputs: ModelInputs | TrainingData, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities for every row."""
    return 1.0 / (1.0 + np.exp(-predict_logits(model, inputs, batch_size)))


def logit_fn(
    model: CTRModel, device: torch.device | str | None = None, batch_size: int = 16384
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """A callable (cat, dense, bucket) -> logits; moves the model to ``device`` once."""
    dev = resolve_device(device) if isinstance(device, str) else (device or _model_device(model))
    model.to(dev)
    return lambda cat, dense, bucket: _logits_np(model, cat, dense, bucket, batch_size, dev)


def score_fn(
    model: CTRModel, device: torch.device | str | None = None, batch_size: int = 16384
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """A callable (cat, dense, bucket) -> probabilities, for fast evaluation (counterfactual sweeps)."""
    f = logit_fn(model, device, batch_size)
    return lambda cat, dense, bucket: 1.0 / (1.0 + np.exp(-f(cat, dense, bucket)))


def safe_auc(label: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    if len(np.unique(label)) < 2:
        return float("nan")
    return float(roc_auc_score(label, score))
