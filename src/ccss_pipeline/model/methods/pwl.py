"""``pwl``: the point-wise gradient penalty of Gupta et al. (2019), "How to incorporate monotonicity in
deep networks while preserving flexibility?" (NeurIPS workshop).

Term: the mean, over the batch's rows and its directed features k (a row whose k is missing left out:
its dense value 0 is a placeholder, not a position on k's axis), of relu(−d_k · ∂z/∂dense_k) — the
slope of the logit along k's dense input wherever it points the wrong way. The gradient comes from
``torch.autograd.grad(..., create_graph=True)`` on the batch's dense input, so the penalty is
differentiated in the same backward pass as BCE (double backward: ~2x a plain step). No pairs.

What it **cannot** see: the bucket path. Each numerical feature also enters as the embedding of its
bucket id, and the gradient through an embedding lookup with respect to the input is zero (an integer
index has no derivative), so a bucket embedding that jumps the wrong way at an edge is never penalised
— exactly the failure ``docs/method.md`` §2 measured (the edge test). It is here as the ablation that
shows how much of monotonicity lives in the buckets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from ccss_pipeline.config import ContrastiveConfig, PwlConfig, SearchRange, TrainingConfig
from ccss_pipeline.model.batches import Batch
from ccss_pipeline.model.methods.base import BatchTerm, MonotonicityMethod, plain_term, register
from ccss_pipeline.spec import FeatureSpec

if TYPE_CHECKING:
    import optuna


def gradient_penalty(grad: torch.Tensor, direction: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """mean over the present (row, feature) entries of relu(−d_k · grad); grad and present (B, K), direction (K,)."""
    w = present.float()
    return (F.relu(-direction.float() * grad.float()) * w).sum() / w.sum().clamp_min(1.0)


def dense_gradient(step: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B,), ∂z_i/∂dense_i (B, K)) with the graph kept, so the gradient can be penalised.

    Rows do not interact in any backbone, so the gradient of Σ z with respect to row i's dense input is
    row i's own gradient."""
    dense = batch.dense.detach().requires_grad_(True)
    z_o, _ = step(batch.cat, dense, batch.bucket)
    (grad,) = torch.autograd.grad(z_o.float().sum(), dense, create_graph=True)
    return z_o, grad


@register
@dataclass(frozen=True)
class PointwiseGradientPenalty(MonotonicityMethod):
    """The point-wise gradient penalty on the dense inputs (blind to the bucket path; see the module)."""

    name: ClassVar[str] = "pwl"
    own_params: ClassVar[tuple[str, ...]] = ()
    cfg: PwlConfig = PwlConfig()

    @classmethod
    def from_training(
        cls, training: TrainingConfig, tuned: Mapping[str, float] | None = None
    ) -> PointwiseGradientPenalty:
        return cls(training.pwl)

    def suggest(
        self, trial: optuna.trial.BaseTrial, training: TrainingConfig
    ) -> tuple[ContrastiveConfig, PointwiseGradientPenalty]:
        """λ only, from ``pwl.weight_range``."""
        r = self.weight_range(training)
        weight = trial.suggest_float("weight", r.low, r.high, log=r.log)
        return training.contrastive.model_copy(update={"weight": weight}), self

    def weight_range(self, training: TrainingConfig) -> SearchRange:
        """``pwl.weight_range``: a gradient has another scale than CCSS's hinge on logit differences."""
        return self.cfg.weight_range

    def bind(self, spec: FeatureSpec, device: torch.device, pair_rows: int) -> BatchTerm:
        index = spec.directed_indices()
        if not index:
            return plain_term
        directed = torch.tensor(index, dtype=torch.long, device=device)
        sign = torch.tensor([spec.numerical[k].direction for k in index], dtype=torch.float32, device=device)
        missing = torch.tensor([spec.numerical[k].missing_bucket for k in index], dtype=torch.long, device=device)

        def term(step: torch.nn.Module, batch: Batch, cfg: ContrastiveConfig) -> tuple[torch.Tensor, torch.Tensor]:
            z_o, grad = dense_gradient(step, batch)
            present = batch.bucket[:, directed] != missing
            return z_o, gradient_penalty(grad[:, directed], sign, present)

        return term

    def settings(self) -> dict[str, Any]:
        return {}  # the block holds only a search range: nothing that shapes one fit's weights
