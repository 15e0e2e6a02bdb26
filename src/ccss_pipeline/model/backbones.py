"""Model-agnostic backbones (spec §5) and the CTR model wrapper.

Every backbone consumes the encoded representation ``fields`` (B, F, d) and ``dense`` (B, K) and returns
``(logit (B,), hidden (B, H))``; ``hidden`` is the last hidden representation used by the ``infonce``
contrastive loss. CCSS never changes a backbone: :meth:`CTRModel.forward_points` only changes what is fed in.
"""

from __future__ import annotations

import torch
from torch import nn

from ccss_pipeline.config import BackboneConfig
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.model.encoders import InputEncoder
from ccss_pipeline.spec import FeatureSpec


def _mlp(in_dim: int, hidden: list[int], dropout: float) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = h
    return nn.Sequential(*layers), in_dim


def _flat(fields: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    return torch.cat([fields.flatten(1), dense], dim=1)


class DNN(nn.Module):
    """MLP over concatenated field embeddings and dense values."""

    def __init__(self, n_fields: int, n_dense: int, cfg: BackboneConfig) -> None:
        super().__init__()
        self.deep, h = _mlp(n_fields * cfg.embedding_dim + n_dense, list(cfg.hidden_units), cfg.dropout)
        self.out = nn.Linear(h, 1)

    def forward(self, fields: torch.Tensor, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.deep(_flat(fields, dense))
        return self.out(hidden).squeeze(-1), hidden


class WideDeep(nn.Module):
    """Wide & Deep: a linear (wide) part over the same inputs plus the deep MLP."""

    def __init__(self, n_fields: int, n_dense: int, cfg: BackboneConfig) -> None:
        super().__init__()
        in_dim = n_fields * cfg.embedding_dim + n_dense
        self.wide = nn.Linear(in_dim, 1)
        self.deep, h = _mlp(in_dim, list(cfg.hidden_units), cfg.dropout)
        self.out = nn.Linear(h, 1, bias=False)

    def forward(self, fields: torch.Tensor, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _flat(fields, dense)
        hidden = self.deep(x)
        return (self.wide(x) + self.out(hidden)).squeeze(-1), hidden


class DeepFM(nn.Module):
    """DeepFM: first-order linear + FM second order over all fields (dense as fields) + deep MLP."""

    def __init__(self, n_fields: int, n_dense: int, cfg: BackboneConfig) -> None:
        super().__init__()
        d = cfg.embedding_dim
        in_dim = n_fields * d + n_dense
        self.dense_vectors = nn.Parameter(torch.randn(n_dense, d) * cfg.embedding_init_std)
        self.first = nn.Linear(in_dim, 1)
        self.deep, h = _mlp(in_dim, list(cfg.hidden_units), cfg.dropout)
        self.out = nn.Linear(h, 1, bias=False)

    def forward(self, fields: torch.Tensor, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _flat(fields, dense)
        all_fields = torch.cat([fields, dense.unsqueeze(-1) * self.dense_vectors], dim=1)
        s = all_fields.sum(1)
        fm = 0.5 * (s * s - (all_fields * all_fields).sum(1)).sum(-1, keepdim=True)
        hidden = self.deep(x)
        return (self.first(x) + fm + self.out(hidden)).squeeze(-1), hidden


class CrossLayer(nn.Module):
    """DCN-v2 cross layer with a full-rank W: x_{l+1} = x0 * (W x_l + b) + x_l."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x


class DCNv2(nn.Module):
    """DCN-v2 (stacked): ``cross_layers`` full-rank cross layers followed by the deep MLP."""

    def __init__(self, n_fields: int, n_dense: int, cfg: BackboneConfig) -> None:
        super().__init__()
        in_dim = n_fields * cfg.embedding_dim + n_dense
        self.cross = nn.ModuleList(CrossLayer(in_dim) for _ in range(cfg.cross_layers))
        self.deep, h = _mlp(in_dim, list(cfg.hidden_units), cfg.dropout)
        self.out = nn.Linear(h, 1)

    def forward(self, fields: torch.Tensor, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = _flat(fields, dense)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        hidden = self.deep(x)
        return self.out(hidden).squeeze(-1), hidden


BACKBONES: dict[str, type[nn.Module]] = {"dnn": DNN, "wide_deep": WideDeep, "deepfm": DeepFM, "dcn_v2": DCNv2}


def build_backbone(name: str, spec: FeatureSpec, cfg: BackboneConfig) -> nn.Module:
    """Instantiate backbone ``name`` for ``spec``; unknown names fail listing the allowed ones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; allowed: {sorted(BACKBONES)}")
    n_fields = len(spec.categorical) + len(spec.numerical)
    return BACKBONES[name](n_fields, len(spec.numerical), cfg)


class CTRModel(nn.Module):
    """InputEncoder + backbone; also the one-pass O/F/C forward CCSS trains with.

    ``recalibration`` (:mod:`ccss_pipeline.model.calibration`, fitted on validation after training) is
    carried by the module, not by its weights: :meth:`forward` and :meth:`forward_points` give the raw
    logit training works on, :meth:`served_logit` the recalibrated one that every probability is made
    of (scoring, evaluation, what-if, the score pipeline and the ONNX graph all call it)."""

    def __init__(self, spec: FeatureSpec, cfg: BackboneConfig, recalibration: Recalibration | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.recalibration = recalibration or Recalibration()
        self.encoder = InputEncoder(spec, cfg.embedding_dim, cfg.embedding_init_std)
        self.backbone = build_backbone(cfg.name, spec, cfg)

    def forward(
        self, cat: torch.Tensor, dense: torch.Tensor, bucket: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        fields, d = self.encoder(cat, dense, bucket)
        return self.backbone(fields, d)

    def served_logit(self, cat: torch.Tensor, dense: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
        """The logit the model's probability is made of: the raw logit through the recalibration.

        Without one (training, the search, a model saved before recalibration existed) this is
        :meth:`forward`'s logit itself. With one it is ``scale · z + shift`` computed in float64, so two
        distinct float32 logits never collapse into one (a strictly increasing map keeps every order)."""
        z, _ = self(cat, dense, bucket)
        r = self.recalibration
        if r.is_identity:
            return z
        return z.to(torch.float64) * r.scale + r.shift

    def forward_points(
        self,
        cat: torch.Tensor,
        dense: torch.Tensor,
        bucket: torch.Tensor,
        p: int,
        feature: torch.Tensor,
        pts_bucket: torch.Tensor,
        pts_dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits and hidden states of O (all B rows) and of the Q counterfactual points of the first ``p`` rows.

        The batch is encoded once; each point only swaps the moved feature's bucket embedding and dense
        value; then a single backbone pass runs over the (B + Q·P) concatenation.
        Returns (z_o (B,), z_pts (P, Q), h_o (B, H), h_pts (P, Q, H)).
        """
        all_f, all_d = self.encoder.encode_points(cat, dense, bucket, p, feature, pts_bucket, pts_dense)
        z, h = self.backbone(all_f, all_d)
        b, q = cat.shape[0], pts_bucket.shape[1]
        z_pts = z[b:].view(q, p).t()
        h_pts = h[b:].view(q, p, -1).transpose(0, 1)
        return z[:b], z_pts, h[:b], h_pts
