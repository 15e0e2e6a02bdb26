"""A batch's pairs (:class:`PairBatch`) built by hand for the contrastive loss's tests: the loss reads the
template, direction, validity, ``f_is_up`` and ``has_pair``; the points' inputs are placeholders."""

from __future__ import annotations

import numpy as np
import torch

from ccss_pipeline.model.moves import MoveTemplate
from ccss_pipeline.model.synthesis import PairBatch


def pair_batch(
    template: MoveTemplate,
    direction: object,
    valid: object,
    f_is_up: torch.Tensor | None = None,
    has_pair: torch.Tensor | None = None,
) -> PairBatch:
    """P pairs of ``template`` with ``direction`` (P,) and ``valid`` (P, C) (lists, arrays or tensors);
    ``f_is_up`` and ``has_pair`` default to all True."""
    valid_t = torch.as_tensor(np.array(valid, dtype=bool))  # a copy: a reversed view has negative strides
    n, q = valid_t.shape[0], len(template.points)
    return PairBatch(
        template,
        has_pair=torch.ones(n, dtype=torch.bool) if has_pair is None else has_pair,
        feature=torch.zeros(n, dtype=torch.long),
        point_bucket=torch.zeros(n, q, dtype=torch.long),
        f_is_up=torch.ones(n, dtype=torch.bool) if f_is_up is None else f_is_up,
        direction=torch.as_tensor(np.asarray(direction, dtype=np.float32)),
        point_dense=torch.zeros(n, q),
        valid=valid_t,
    )
