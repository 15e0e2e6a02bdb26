"""CCSS contrastive losses (spec §4) and the total training loss.

Every loss returns one value per pair; :func:`contrastive_loss` averages it over the rows that have a
valid pair (``mask``). ``s = +1`` for y = 1 and ``-1`` for y = 0: since synthesis already folded the
feature's direction and the label into which move is F, ``s * (z_F - z_C) > 0`` always means "the logit
moved in the feature's direction".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ccss_pipeline.config import ContrastiveConfig

LossFn = Callable[..., torch.Tensor]


def _sign(label: torch.Tensor) -> torch.Tensor:
    return label.float() * 2.0 - 1.0


def margin_loss(z_o, z_f, z_c, h_o, h_f, h_c, label, cfg: ContrastiveConfig) -> torch.Tensor:
    """max(0, m - s(zF - zC)) [+ max(0, m - s(zF - zO)) + max(0, m - s(zO - zC))]."""
    s, m = _sign(label), cfg.margin
    loss = F.relu(m - s * (z_f - z_c))
    if cfg.anchor_on_original:
        loss = loss + F.relu(m - s * (z_f - z_o)) + F.relu(m - s * (z_o - z_c))
    return loss


def infonce_loss(z_o, z_f, z_c, h_o, h_f, h_c, label, cfg: ContrastiveConfig) -> torch.Tensor:
    """-log softmax over {cos(hO,hF), cos(hO,hC)} / tau, target = F."""
    pos = F.cosine_similarity(h_o, h_f, dim=-1) / cfg.temperature
    neg = F.cosine_similarity(h_o, h_c, dim=-1) / cfg.temperature
    return -(pos - torch.logaddexp(pos, neg))


def bpr_loss(z_o, z_f, z_c, h_o, h_f, h_c, label, cfg: ContrastiveConfig) -> torch.Tensor:
    """-log sigmoid(s (zF - zC) / tau)."""
    return -F.logsigmoid(_sign(label) * (z_f - z_c) / cfg.temperature)


CONTRASTIVE_LOSSES: dict[str, LossFn] = {"margin": margin_loss, "infonce": infonce_loss, "bpr": bpr_loss}


def contrastive_loss(
    name: str,
    z_o: torch.Tensor,
    z_f: torch.Tensor,
    z_c: torch.Tensor,
    h_o: torch.Tensor | None,
    h_f: torch.Tensor | None,
    h_c: torch.Tensor | None,
    label: torch.Tensor,
    cfg: ContrastiveConfig,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean contrastive loss over the pairs (``mask`` selects the valid ones; all when None).

    All tensors are aligned per pair (z_o, h_o, label are the O rows of the pairs).
    """
    if name not in CONTRASTIVE_LOSSES:
        raise ValueError(f"unknown contrastive loss {name!r}; allowed: {sorted(CONTRASTIVE_LOSSES)}")
    per_pair = CONTRASTIVE_LOSSES[name](z_o.float(), z_f.float(), z_c.float(),
                                        None if h_o is None else h_o.float(),
                                        None if h_f is None else h_f.float(),
                                        None if h_c is None else h_c.float(), label, cfg)
    if mask is None:
        return per_pair.mean()
    w = mask.to(per_pair.dtype)
    return (per_pair * w).sum() / w.sum().clamp_min(1.0)


def total_loss(z_o: torch.Tensor, label: torch.Tensor, contrastive: torch.Tensor | None, weight: float) -> torch.Tensor:
    """BCE(z_O, y) + λ L_c; with λ = 0 (or no pairs) exactly the plain BCE."""
    bce = F.binary_cross_entropy_with_logits(z_o.float(), label.float())
    if weight == 0 or contrastive is None:
        return bce
    return bce + weight * contrastive
