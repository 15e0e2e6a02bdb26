"""``hints``: monotonicity hints (Sill & Abu-Mostafa, "Monotonicity Hints", NIPS 1997).

For a random ``contrastive.pair_fraction`` of each batch's rows (its first rows: a batch is in random
order, as for CCSS), one directed feature k is drawn uniformly among those present in the row, its
**raw** value is moved up by u · step · span_k with u uniform in (0, 1], and the moved value is encoded
as at inference — dense value and bucket id both move — so the hint sees the bucket path that ``pwl``
cannot. The term is the mean over the hinted rows of relu(−d_k · (z_moved − z_row)). No Shapley draw,
no neighbour buckets, no margin, no label: the cleanest ablation of CCSS.

**[our choice]** span_k is the feature's 1%–99% training quantile span (read from the quantile sketch
the spec carries; the full range, then 1, where that span is 0), so ``step`` means the same share of
the bulk of every feature's values and one outlier does not make the moves huge. The row's raw value
is read back from its dense value (the inverse of the fitted transform, :class:`TorchNumericalEncoder`);
a dense value clipped at ±10σ reads back as the clip point, and the float32 round trip can land just
below a bucket edge the row sits on, so the moved bucket and dense value are never taken below the
row's own (the encoding is monotone in the raw value: this only undoes the round trip).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ccss_pipeline.config import ContrastiveConfig, HintsConfig, SearchRange, TrainingConfig
from ccss_pipeline.encoding import DENSE_CLIP
from ccss_pipeline.model.batches import Batch
from ccss_pipeline.model.methods.base import BatchTerm, MonotonicityMethod, plain_term, register
from ccss_pipeline.spec import FeatureSpec, NumericalFeature

if TYPE_CHECKING:
    import optuna

#: trial parameter of the hint's step (``hints.step_range``)
STEP_PARAM = "hint_step"


def quantile_span(feature: NumericalFeature, low: float = 0.01, high: float = 0.99) -> float:
    """The raw-value span between the ``low`` and ``high`` training quantiles (sketch), else the full
    range (sketch or edges), else 1: the unit a hint's step is a share of."""
    q = np.asarray(feature.quantiles, dtype=np.float64)
    if q.size >= 2:
        levels = np.linspace(0.0, 1.0, q.size)
        span = float(np.interp(high, levels, q) - np.interp(low, levels, q))
        if span > 0:
            return span
        if q[-1] > q[0]:
            return float(q[-1] - q[0])
    edges = np.asarray(feature.boundaries, dtype=np.float64)
    if edges.size >= 2 and edges[-1] > edges[0]:
        return float(edges[-1] - edges[0])
    return 1.0


class TorchNumericalEncoder:
    """``encoding.encode_numerical`` for a set of numerical features, vectorized in torch on the
    training device (float64 inside, as the NumPy encoder), plus the inverse of the dense transform.

    ``features[j]`` is addressed by j: ``encode(raw, j)`` encodes each raw value with its own feature.
    """

    def __init__(self, features: list[NumericalFeature], device: torch.device) -> None:
        def f64(values: object) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device)

        width = max([len(f.boundaries) for f in features] + [1])
        edges = np.full((len(features), width), np.inf)  # +inf pads: never <= a finite value
        for j, f in enumerate(features):
            edges[j, : len(f.boundaries)] = f.boundaries
        self.edges = f64(edges)
        self.mean = f64([f.mean for f in features])
        self.std = f64([f.std for f in features])
        self.log = torch.tensor([f.transform == "log1p" for f in features], dtype=torch.bool, device=device)
        self.missing = torch.tensor([f.missing_bucket for f in features], dtype=torch.long, device=device)

    def encode(self, raw: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dense float32, bucket int64) of raw values (N,) of features ``j`` (N,), exactly as at inference:
        transform (sign · log1p|x| for log1p), standardize, clip at ±10; bucket = edges ≤ value; a
        non-finite value is missing (its own bucket, dense 0)."""
        raw = raw.to(torch.float64)
        missing = ~torch.isfinite(raw)
        safe = torch.where(missing, torch.zeros_like(raw), raw)
        t = torch.where(self.log[j], torch.sign(safe) * torch.log1p(safe.abs()), safe)
        dense = ((t - self.mean[j]) / self.std[j]).clamp(-DENSE_CLIP, DENSE_CLIP)
        bucket = (self.edges[j] <= safe[:, None]).sum(1)
        dense = torch.where(missing, torch.zeros_like(dense), dense)
        bucket = torch.where(missing, self.missing[j], bucket)
        return dense.to(torch.float32), bucket

    def decode(self, dense: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """The raw value (float64) a dense value of features ``j`` encodes (a clipped one: the clip point)."""
        t = dense.to(torch.float64) * self.std[j] + self.mean[j]
        return torch.where(self.log[j], torch.sign(t) * torch.expm1(t.abs()), t)


@dataclass(frozen=True)
class _HintTables:
    """One fit's device tensors over the directed features (position j = j-th of ``spec.directed``)."""

    encoder: TorchNumericalEncoder
    index: torch.Tensor  # (Kd,) position in spec.numerical
    sign: torch.Tensor  # (Kd,) d_k
    span: torch.Tensor  # (Kd,) raw span a step is a share of

    @classmethod
    def of(cls, spec: FeatureSpec, device: torch.device) -> _HintTables:
        directed = spec.directed
        return cls(
            TorchNumericalEncoder(directed, device),
            torch.tensor(spec.directed_indices(), dtype=torch.long, device=device),
            torch.tensor([f.direction for f in directed], dtype=torch.float32, device=device),
            torch.tensor([quantile_span(f) for f in directed], dtype=torch.float64, device=device),
        )


def draw_hints(
    tables: _HintTables, dense: torch.Tensor, bucket: torch.Tensor, step: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of (dense, bucket) (P, K): (hinted?, the drawn feature's position in spec.numerical, its
    direction, the moved bucket, the moved dense value), all (P,). Uses torch's global RNG (seeded, and
    saved by the checkpoint, so a resumed fit draws what an uninterrupted one would)."""
    p, device = dense.shape[0], dense.device
    eligible = bucket[:, tables.index] != tables.encoder.missing  # (P, Kd): present in the row
    score = torch.rand(p, tables.index.shape[0], device=device).masked_fill(~eligible, -1.0)
    j = score.argmax(1)  # uniform among the row's present directed features
    k = tables.index[j]
    row_dense = dense.gather(1, k[:, None]).squeeze(1)
    row_bucket = bucket.gather(1, k[:, None]).squeeze(1)
    amount = (1.0 - torch.rand(p, device=device, dtype=torch.float64)) * step * tables.span[j]  # (0, step·span]
    moved_dense, moved_bucket = tables.encoder.encode(tables.encoder.decode(row_dense, j) + amount, j)
    moved_dense = torch.maximum(moved_dense, row_dense.float())
    moved_bucket = torch.maximum(moved_bucket, row_bucket)
    return eligible.any(1), k, tables.sign[j], moved_bucket, moved_dense


def hint_penalty(z_row: torch.Tensor, z_moved: torch.Tensor, sign: torch.Tensor, hinted: torch.Tensor) -> torch.Tensor:
    """mean over the hinted rows of relu(−d_k · (z_moved − z_row))."""
    w = hinted.float()
    return (F.relu(-sign * (z_moved.float() - z_row.float())) * w).sum() / w.sum().clamp_min(1.0)


@register
@dataclass(frozen=True)
class MonotonicityHints(MonotonicityMethod):
    """Random raw moves up of one directed feature per hinted row, encoded as at inference (see the module)."""

    name: ClassVar[str] = "hints"
    own_params: ClassVar[tuple[str, ...]] = (STEP_PARAM,)
    cfg: HintsConfig = HintsConfig()

    @classmethod
    def from_training(cls, training: TrainingConfig, tuned: Mapping[str, float] | None = None) -> MonotonicityHints:
        step = (tuned or {}).get(STEP_PARAM, training.hints.step)
        return cls(HintsConfig.model_validate({**training.hints.model_dump(), "step": step}))

    def suggest(
        self, trial: optuna.trial.BaseTrial, training: TrainingConfig
    ) -> tuple[ContrastiveConfig, MonotonicityHints]:
        """λ from ``hints.weight_range``; the step from ``hints.step_range`` (when not null)."""
        r = self.weight_range(training)
        weight = trial.suggest_float("weight", r.low, r.high, log=r.log)
        method = self
        if self.cfg.step_range is not None:
            s = self.cfg.step_range
            step = trial.suggest_float(STEP_PARAM, s.low, s.high, log=s.log)
            method = MonotonicityHints(self.cfg.model_copy(update={"step": step}))
        return training.contrastive.model_copy(update={"weight": weight}), method

    def weight_range(self, training: TrainingConfig) -> SearchRange:
        """``hints.weight_range``."""
        return self.cfg.weight_range

    def bind(self, spec: FeatureSpec, device: torch.device, pair_rows: int) -> BatchTerm:
        if not spec.directed:
            return plain_term
        tables, step_share = _HintTables.of(spec, device), float(self.cfg.step)

        def term(step: torch.nn.Module, batch: Batch, cfg: ContrastiveConfig) -> tuple[torch.Tensor, torch.Tensor]:
            p = min(pair_rows, batch.dense.shape[0])
            hinted, k, sign, moved_bucket, moved_dense = draw_hints(
                tables, batch.dense[:p], batch.bucket[:p], step_share
            )
            z_o, z_pts, _, _ = step(
                batch.cat, batch.dense, batch.bucket, p, k, moved_bucket[:, None], moved_dense[:, None]
            )
            return z_o, hint_penalty(z_o[:p], z_pts[:, 0], sign, hinted)

        return term

    def settings(self) -> dict[str, Any]:
        return {"step": self.cfg.step}
