"""CCSS contrastive losses (spec §4) over the constraints of a counterfactual move, and the total loss.

A move (:mod:`ccss_pipeline.model.moves`) holds, per pair, the logits of O and of its points, and ordered
constraints (lower, higher) between them; ``Δ = d_k · (z_higher − z_lower)`` must be positive: the logit
moves in the feature's direction. Since d_k is folded into Δ, no label enters the ordering terms (for the
centre pair this equals the paper's s·(z_F − z_C), with F/C chosen from label and direction).

Constraints are picked by their role (:class:`~ccss_pipeline.model.moves.ConstraintRole`), never by position:

- the centre move (``ENDPOINT``, ``HALF_UP``, ``HALF_DOWN``) uses ``contrastive.loss``: ``margin``
  max(0, m − Δ) on the down→up endpoint and, with ``anchor_on_original``, on the two half-pairs through O
  (at an edge bucket only the one real half-pair counts); ``bpr`` −log σ(Δ/τ) on the endpoint;
  ``infonce`` on the last hidden representation of O, F and C; a ``STEP`` (a centre step outside the F/C
  pair) always counts, with ``contrastive.loss``'s hinge (``margin``/``bpr``);
- ``EDGE`` constraints (bucket-only and dense-only steps) use max(0, m_e − Δ) with weight ``edge_weight``
  (relative to λ), whatever ``contrastive.loss`` is.

The loss takes the batch's pairs (:class:`~ccss_pipeline.model.synthesis.PairBatch`) and the model's
outputs on them (:class:`PairOutputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ccss_pipeline.config import ContrastiveConfig
from ccss_pipeline.model.moves import ANCHOR, ConstraintRole, MoveTemplate
from ccss_pipeline.model.synthesis import PairBatch

CONTRASTIVE_LOSSES = ("margin", "infonce", "bpr")


@dataclass(frozen=True)
class PairOutputs:
    """The model's outputs on a batch's P pairs (its first P rows): what the contrastive loss compares.

    ``z_o`` (P,): the rows' logits; ``z_pts`` (P, Q): the move's points' logits, in template order;
    ``h_o`` (P, H) and ``h_pts`` (P, Q, H): the last hidden representations (InfoNCE only; None: unused).
    """

    z_o: torch.Tensor
    z_pts: torch.Tensor
    h_o: torch.Tensor | None = None
    h_pts: torch.Tensor | None = None


def infonce_loss(h_o: torch.Tensor, h_f: torch.Tensor, h_c: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per pair: −log softmax over {cos(hO,hF), cos(hO,hC)} / τ, target = F."""
    pos = F.cosine_similarity(h_o, h_f, dim=-1) / temperature
    neg = F.cosine_similarity(h_o, h_c, dim=-1) / temperature
    return -(pos - torch.logaddexp(pos, neg))


def constraint_weights(template: MoveTemplate, valid: torch.Tensor, cfg: ContrastiveConfig) -> torch.Tensor:
    """Which constraints count per pair (P, C): validity, the anchor option, and the edge-bucket rule."""
    w = valid.float().clone()
    if template.endpoint is None:
        return w
    end = template.columns(ConstraintRole.ENDPOINT)
    halves = template.columns(ConstraintRole.HALF_UP, ConstraintRole.HALF_DOWN)
    if cfg.loss == "margin" and cfg.anchor_on_original:
        # at an edge bucket the endpoint IS the one half-pair (0/1 weights: the product is exact)
        w[:, end] = w[:, end] * w[:, halves].prod(1, keepdim=True)
    else:
        w[:, halves] = 0.0
        if cfg.loss == "infonce":
            w[:, end] = 0.0  # InfoNCE replaces the ordering term (added separately)
    return w


def _check(template: MoveTemplate, cfg: ContrastiveConfig) -> None:
    if cfg.loss not in CONTRASTIVE_LOSSES:
        raise ValueError(f"unknown contrastive loss {cfg.loss!r}; allowed: {sorted(CONTRASTIVE_LOSSES)}")
    if cfg.loss == "infonce" and not template.has_centre_pair:
        raise ValueError(
            f"the infonce loss needs a move with a centre pair; move {template.name!r} has none "
            "(use counterfactual_pairs.move: centre, within, straddle or decomposed)"
        )


def _infonce_term(pairs: PairBatch, out: PairOutputs, cfg: ContrastiveConfig) -> torch.Tensor | None:
    """Per pair: InfoNCE of the F/C pair (F per ``f_is_up``) around O (an anchored move: its anchor),
    where the endpoint is valid; None without hidden representations."""
    t, end = pairs.template, pairs.template.endpoint
    if out.h_o is None or out.h_pts is None or end is None:
        return None
    h_o = out.h_pts[:, t.index(ANCHOR) - 1] if t.anchored else out.h_o  # the move starts from its anchor
    h_up = out.h_pts[:, t.index(end.higher) - 1].float()
    h_down = out.h_pts[:, t.index(end.lower) - 1].float()
    pick = pairs.f_is_up[:, None]
    h_f, h_c = torch.where(pick, h_up, h_down), torch.where(pick, h_down, h_up)
    valid = pairs.valid[:, t.columns(ConstraintRole.ENDPOINT)[0]].float()
    return infonce_loss(h_o.float(), h_f, h_c, cfg.temperature) * valid


def counterfactual_loss(pairs: PairBatch, out: PairOutputs, cfg: ContrastiveConfig) -> torch.Tensor:
    """Mean over the pairs (``pairs.has_pair``) of the summed constraint losses of each pair.

    ``pairs``: the move's template, each pair's direction (P,) in {+1, −1}, constraint validity (P, C),
    ``f_is_up`` and ``has_pair`` (P,) bool; ``out``: the model's logits (and hidden representations)."""
    template = pairs.template
    _check(template, cfg)
    z = torch.cat([out.z_o.float()[:, None], out.z_pts.float()], dim=1)
    lower = torch.as_tensor(template.lower, device=z.device)
    higher = torch.as_tensor(template.higher, device=z.device)
    is_edge = torch.as_tensor(template.is_edge, device=z.device)
    delta = pairs.direction.float()[:, None] * (z[:, higher] - z[:, lower])
    if cfg.loss == "bpr":
        main = -F.logsigmoid(delta / cfg.temperature)
    else:
        main = F.relu(cfg.margin - delta)
    edge = cfg.edge_weight * F.relu(cfg.edge_margin - delta)
    per_pair = (torch.where(is_edge, edge, main) * constraint_weights(template, pairs.valid, cfg)).sum(1)
    if cfg.loss == "infonce":
        infonce = _infonce_term(pairs, out, cfg)
        if infonce is not None:
            per_pair = per_pair + infonce
    w = pairs.has_pair.float()
    return (per_pair * w).sum() / w.sum().clamp_min(1.0)


def total_loss(z_o: torch.Tensor, label: torch.Tensor, contrastive: torch.Tensor | None, weight: float) -> torch.Tensor:
    """BCE(z_O, y) + λ L_c; with λ = 0 (or no pairs) exactly the plain BCE."""
    bce = F.binary_cross_entropy_with_logits(z_o.float(), label.float())
    if weight == 0 or contrastive is None:
        return bce
    return bce + weight * contrastive
