"""CCSS contrastive losses (spec §4) over the constraints of a counterfactual move, and the total loss.

A move (:mod:`ccss_pipeline.model.moves`) holds, per pair, the logits of O and of its points, and ordered
constraints (lower, higher) between them; ``Δ = d_k · (z_higher − z_lower)`` must be positive: the logit
moves in the feature's direction. Since d_k is folded into Δ, no label enters the ordering terms (for the
centre pair this equals the paper's s·(z_F − z_C), with F/C chosen from label and direction).

- ``main`` constraints (the centre move) use ``contrastive.loss``: ``margin`` max(0, m − Δ) on the
  down→up endpoint and, with ``anchor_on_original``, on the two half-pairs through O (at an edge bucket
  only the one real half-pair counts); ``bpr`` −log σ(Δ/τ) on the endpoint; ``infonce`` on the last hidden
  representation of O, F and C.
- ``edge`` constraints (bucket-only and dense-only steps) use max(0, m_e − Δ) with weight ``edge_weight``
  (relative to λ), whatever ``contrastive.loss`` is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ccss_pipeline.config import ContrastiveConfig
from ccss_pipeline.model.moves import ANCHOR, MoveTemplate

CONTRASTIVE_LOSSES = ("margin", "infonce", "bpr")


def infonce_loss(h_o: torch.Tensor, h_f: torch.Tensor, h_c: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per pair: −log softmax over {cos(hO,hF), cos(hO,hC)} / τ, target = F."""
    pos = F.cosine_similarity(h_o, h_f, dim=-1) / temperature
    neg = F.cosine_similarity(h_o, h_c, dim=-1) / temperature
    return -(pos - torch.logaddexp(pos, neg))


def constraint_weights(template: MoveTemplate, valid: torch.Tensor, cfg: ContrastiveConfig) -> torch.Tensor:
    """Which constraints count per pair (P, C): validity, the anchor option, and the edge-bucket rule."""
    w = valid.float().clone()
    if template.has_centre_pair:
        if cfg.loss == "margin" and cfg.anchor_on_original:
            w[:, 0] = w[:, 0] * w[:, 1] * w[:, 2]  # at an edge bucket the endpoint IS the one half-pair
        else:
            w[:, 1] = 0.0
            w[:, 2] = 0.0
            if cfg.loss == "infonce":
                w[:, 0] = 0.0  # InfoNCE replaces the ordering term (added separately)
    return w


def counterfactual_loss(
    template: MoveTemplate,
    z_o: torch.Tensor,
    z_pts: torch.Tensor,
    h_o: torch.Tensor | None,
    h_pts: torch.Tensor | None,
    direction: torch.Tensor,
    valid: torch.Tensor,
    f_is_up: torch.Tensor,
    has_pair: torch.Tensor,
    cfg: ContrastiveConfig,
) -> torch.Tensor:
    """Mean over the pairs (``has_pair``) of the summed constraint losses of each pair.

    Shapes: z_o (P,), z_pts (P, Q), h_o (P, H), h_pts (P, Q, H), direction (P,) in {+1, −1}, valid (P, C),
    f_is_up/has_pair (P,) bool.
    """
    if cfg.loss not in CONTRASTIVE_LOSSES:
        raise ValueError(f"unknown contrastive loss {cfg.loss!r}; allowed: {sorted(CONTRASTIVE_LOSSES)}")
    if cfg.loss == "infonce" and not template.has_centre_pair:
        raise ValueError(
            f"the infonce loss needs a move with a centre pair; move {template.name!r} has none "
            "(use counterfactual_pairs.move: centre, within, straddle or decomposed)"
        )
    z = torch.cat([z_o.float()[:, None], z_pts.float()], dim=1)
    lower = torch.as_tensor(template.lower, device=z.device)
    higher = torch.as_tensor(template.higher, device=z.device)
    is_edge = torch.as_tensor(template.is_edge, device=z.device)
    delta = direction.float()[:, None] * (z[:, higher] - z[:, lower])
    if cfg.loss == "bpr":
        main = -F.logsigmoid(delta / cfg.temperature)
    else:
        main = F.relu(cfg.margin - delta)
    edge = cfg.edge_weight * F.relu(cfg.edge_margin - delta)
    per_pair = (torch.where(is_edge, edge, main) * constraint_weights(template, valid, cfg)).sum(1)
    if cfg.loss == "infonce" and h_o is not None and h_pts is not None:
        if template.anchored:  # the move starts from its anchor, not from the row
            h_o = h_pts[:, template.index(ANCHOR) - 1]
        up, down = template.index("up") - 1, template.index("down") - 1
        h_up, h_down = h_pts[:, up].float(), h_pts[:, down].float()
        pick = f_is_up[:, None]
        h_f, h_c = torch.where(pick, h_up, h_down), torch.where(pick, h_down, h_up)
        per_pair = per_pair + infonce_loss(h_o.float(), h_f, h_c, cfg.temperature) * valid[:, 0].float()
    w = has_pair.float()
    return (per_pair * w).sum() / w.sum().clamp_min(1.0)


def total_loss(z_o: torch.Tensor, label: torch.Tensor, contrastive: torch.Tensor | None, weight: float) -> torch.Tensor:
    """BCE(z_O, y) + λ L_c; with λ = 0 (or no pairs) exactly the plain BCE."""
    bce = F.binary_cross_entropy_with_logits(z_o.float(), label.float())
    if weight == 0 or contrastive is None:
        return bce
    return bce + weight * contrastive
