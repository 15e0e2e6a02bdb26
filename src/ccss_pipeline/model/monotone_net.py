"""A neural CTR model monotone by construction in the directed features (issue 27): a Lipschitz
monotonic network (Kitouni, Nolte, Williams, "Expressive Monotonic Neural Networks", ICLR 2023).

The logit is ``z(x) = g(x) + λ · Σ_k d_k · x_k + b(context)``:

- ``g`` is a network whose every weight matrix is normalised directly (``monotonicnetworks``'
  ``LipschitzLinear``: the first layer ``kind="one-inf"`` — each |W_ij| ≤ λ^{1/L} —, the others
  ``kind="inf"`` — each row's Σ|W_ij| ≤ λ^{1/L}) with GroupSort activations (sorted pairs, 1-Lipschitz):
  |g(x) − g(x')| ≤ λ·‖x − x'‖₁, so moving one input x_k by t changes g by at most λ·|t|;
- the residual λ·d_k·x_k over the directed inputs then makes ``d_k·∂z/∂x_k = λ + d_k·∂g/∂x_k ≥ 0``:
  z is monotone in every directed input, **whatever the weights** — a property of the architecture,
  not of the training (it is ``monotonicnetworks.MonotonicWrapper``'s formula, written out so that
  the last hidden layer can be returned too; a test holds the two equal). The guarantee is one of real
  arithmetic: evaluated in float64 no step goes the wrong way; in float32, as the project scores,
  rounding inside the layers can reverse a step by a few ulps of the logit where the network is flat
  in a feature (g cancelling the residual) — measured ≤ 1.5e-6 in logit, ≤ 2.1e-7 in probability on
  600,000 random pairs, below the raw-grid sweep's ε = 1e-6 on the probability;
- ``b`` is a sum of learned per-id scalars (a wide, first-order term) over the categoricals and the
  undirected features' buckets: unconstrained, as it never sees a directed input.

Inputs. A directed feature enters **only** through its ``dense`` value, on the constrained path: its
bucket embedding is dropped, since an unconstrained input that jumps at every bucket edge would break
the guarantee exactly there (the raw-grid edge test isolates that jump). As in :mod:`.gbdt`, the raw →
dense encoding is non-decreasing (strictly increasing transform, std > 0, then the ±10 σ clip and the
float32 cast flatten it), so a monotone function of ``dense`` is monotone in the raw value. The other
inputs are unconstrained inputs of the same Lipschitz network (direction 0): the undirected features'
dense values and bucket embeddings, the categorical embeddings, and one 0/1 "missing" flag per
numerical feature (a missing value is dense 0 in the missing bucket). The embeddings are free
parameters, so the Lipschitz bound limits how fast the logit moves per unit of embedding, not how far
apart two ids can be. λ bounds the slope in a directed input to ``[0, 2λ]`` per standard deviation and
in an undirected one to ``[−λ, λ]``: the price of the guarantee is this bounded, smooth shape.

:class:`MonotoneNet` is an ``nn.Module`` with :class:`~ccss_pipeline.model.backbones.CTRModel`'s call
shape (``forward(cat, dense, bucket) -> (logit, hidden)`` and ``served_logit``), so the functions of
:mod:`ccss_pipeline.model.scoring` score it as they score any backbone. :func:`fit_monotone_net`: BCE,
Adam, early stopping on validation AUC. Saved as a ``state_dict`` plus a JSON of the configuration,
loaded with ``weights_only=True``. ``monotonicnetworks`` (MIT, pure PyTorch) is in the optional extra
``compare`` (``pip install -e ".[compare]"``), imported only when a network is built.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ccss_pipeline.config import SearchRange, StrictConfig
from ccss_pipeline.files import atomic_write
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.checkpoint import EarlyStopping
from ccss_pipeline.model.scoring import predict_logits, safe_auc, score_fn
from ccss_pipeline.spec import FeatureSpec, ModelInputs

if TYPE_CHECKING:  # the tuning study is Optuna's, imported when a study runs
    import optuna

    from ccss_pipeline.model.peer_tuning import StudyPlan

WEIGHTS_FILE = "model.pt"
META_FILE = "monotone_net.json"
FORMAT_VERSION = 1
EXTRA_HINT = 'pip install -e ".[compare]"'


def _monotonicnetworks() -> Any:
    """``import monotonicnetworks``, or an error naming the extra that brings it."""
    try:
        import monotonicnetworks
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            f"the Lipschitz monotonic network needs monotonicnetworks, in the optional extra 'compare': {EXTRA_HINT}"
        ) from exc
    return monotonicnetworks


class MonotoneNetConfig(BaseModel):
    """The network and its fit. ``lipschitz`` is λ; ``hidden_units`` are even (GroupSort sorts pairs).
    ``monotone=False`` builds the same network on the same inputs with every direction 0 — no residual,
    no guarantee: the reference that shows what the construction prevents."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    embedding_dim: int = Field(8, ge=1)
    embedding_init_std: float = Field(0.05, gt=0)
    hidden_units: tuple[int, ...] = (64, 64)
    lipschitz: float = Field(1.0, gt=0)
    learning_rate: float = Field(1e-2, gt=0)
    batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(30, ge=1)
    patience: int = Field(3, ge=0)
    seed: int = Field(0, ge=0)
    monotone: bool = True

    @field_validator("hidden_units")
    @classmethod
    def _even_widths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(h < 2 or h % 2 for h in value):
            raise ValueError(f"hidden_units must be even widths >= 2 (GroupSort sorts pairs), got {list(value)}")
        return value


class MonotoneNet(nn.Module):
    """Lipschitz monotonic network over the encoded inputs (module docstring); CTRModel's call shape."""

    directed: torch.Tensor  # buffers (registered in __init__), typed for the checker
    free: torch.Tensor
    directions: torch.Tensor
    missing_buckets: torch.Tensor
    offsets: torch.Tensor
    lipschitz: torch.Tensor

    def __init__(self, spec: FeatureSpec, cfg: MonotoneNetConfig | None = None) -> None:
        super().__init__()
        lmn = _monotonicnetworks()
        cfg = cfg or MonotoneNetConfig()
        self.cfg = cfg
        directed = spec.directed_indices()
        free = [i for i in range(len(spec.numerical)) if i not in directed]
        signs = [float(np.sign(spec.numerical[i].direction)) if cfg.monotone else 0.0 for i in directed]
        self.register_buffer("directed", torch.tensor(directed, dtype=torch.long))
        self.register_buffer("free", torch.tensor(free, dtype=torch.long))
        self.register_buffer("directions", torch.tensor(signs, dtype=torch.float32))
        self.register_buffer("missing_buckets", torch.tensor([n.missing_bucket for n in spec.numerical]))
        self.register_buffer("lipschitz", torch.tensor(float(cfg.lipschitz)))
        sizes = [c.vocab_size for c in spec.categorical] + [spec.numerical[i].n_buckets + 1 for i in free]
        self.n_categorical = len(spec.categorical)
        self.register_buffer("offsets", torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0)[: len(sizes)])
        self.table = nn.Embedding(max(sum(sizes), 1), cfg.embedding_dim)
        nn.init.normal_(self.table.weight, std=cfg.embedding_init_std)
        self.wide = nn.Embedding(max(sum(sizes), 1), 1)
        nn.init.zeros_(self.wide.weight)
        n_in = len(spec.numerical) * 2 + len(sizes) * cfg.embedding_dim  # dense values, flags, embeddings
        per_layer = cfg.lipschitz ** (1.0 / (len(cfg.hidden_units) + 1))
        layers: list[nn.Module] = []
        width, kind = n_in, "one-inf"  # ‖·‖₁ → ‖·‖∞ first, then ‖·‖∞ → ‖·‖∞
        for h in cfg.hidden_units:
            layers += [lmn.LipschitzLinear(width, h, kind=kind, lipschitz_const=per_layer), lmn.GroupSort(h // 2)]
            width, kind = h, "inf"
        self.body = nn.Sequential(*layers)
        self.head = lmn.LipschitzLinear(width, 1, kind=kind, lipschitz_const=per_layer)
        self.n_inputs = n_in

    def constraints(self) -> torch.Tensor:
        """Per input of :meth:`inputs`: the direction (directed dense values first), 0 for the rest."""
        out = torch.zeros(self.n_inputs, device=self.directions.device)
        out[: self.directions.numel()] = self.directions
        return out

    def _ids(self, cat: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
        """Rows of the embedding tables: the categorical ids, then the undirected features' buckets."""
        return torch.cat([cat, bucket.index_select(1, self.free)], dim=1) + self.offsets

    def inputs(self, cat: torch.Tensor, dense: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
        """The network's input: [directed dense | undirected dense | missing flags | embeddings]. A
        directed feature's bucket id enters only through its missing flag (bucket == missing bucket),
        constant along every raw path of non-missing values; it has no embedding."""
        missing = (bucket == self.missing_buckets).to(dense.dtype)
        emb = self.table(self._ids(cat, bucket)).flatten(1)
        return torch.cat([dense.index_select(1, self.directed), dense.index_select(1, self.free), missing, emb], 1)

    def forward(
        self, cat: torch.Tensor, dense: torch.Tensor, bucket: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, M) ids, (B, K) dense, (B, K) buckets -> logit (B,), last hidden layer (B, H)."""
        x = self.inputs(cat, dense, bucket)
        hidden = self.body(x)
        residual = self.lipschitz * (x[:, : self.directions.numel()] @ self.directions)
        wide = self.wide(self._ids(cat, bucket)).sum(dim=(1, 2))
        return self.head(hidden).squeeze(-1) + residual + wide, hidden

    def served_logit(self, cat: torch.Tensor, dense: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
        """The logit every probability is made of (no recalibration: a fitted affine map would be
        monotone too, but this model carries none)."""
        return self(cat, dense, bucket)[0]

    def scorer(self, batch_size: int = 16384) -> Any:
        """``scorer(cat, dense, bucket) -> prob`` (numpy, float32 forward): :func:`scoring.score_fn`,
        which reaches the model only through :meth:`served_logit`, on the device the model is on."""
        return score_fn(cast(Any, self), None, batch_size)

    def save(self, folder: str | Path, spec: FeatureSpec, **record: Any) -> Path:
        """Write ``model.pt`` (the ``state_dict``) and ``monotone_net.json`` (configuration, the spec's
        fingerprint, ``record``) into ``folder``, replaced as a whole, atomically."""
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": "lipschitz-monotonic-network",
            "config": self.cfg.model_dump(mode="json"),
            "spec_fingerprint": spec.fingerprint,
            **record,
        }
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}

        def write(tmp: Path) -> None:
            tmp.mkdir()
            torch.save(state, tmp / WEIGHTS_FILE)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))

        return atomic_write(folder, write)

    @classmethod
    def load(cls, folder: str | Path, spec: FeatureSpec) -> MonotoneNet:
        """Rebuild the network for ``spec`` (refusing one saved for another spec) and load its weights
        with ``weights_only=True``; returned in eval mode."""
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / META_FILE}: format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        if meta.get("spec_fingerprint") != spec.fingerprint:
            raise StaleArtifactError(
                f"the monotone network in {folder} was fitted for feature spec {meta.get('spec_fingerprint')}, "
                f"not the current {spec.fingerprint}: fit it again"
            )
        model = cls(spec, MonotoneNetConfig(**meta["config"]))
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        return model.eval()


@dataclass
class MonotoneNetFit:
    """A fitted network (best validation epoch's weights, eval mode) and its history."""

    model: MonotoneNet
    best_epoch: int
    best_auc: float
    history: list[dict[str, float]] = field(default_factory=list)

    def save(self, folder: str | Path, spec: FeatureSpec) -> Path:
        auc = None if math.isnan(self.best_auc) else self.best_auc
        return self.model.save(folder, spec, best_epoch=self.best_epoch, best_auc=auc, history=self.history)


def _tensors(inputs: ModelInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(np.ascontiguousarray(inputs.cat), dtype=torch.long),
        torch.as_tensor(np.ascontiguousarray(inputs.dense), dtype=torch.float32),
        torch.as_tensor(np.ascontiguousarray(inputs.bucket), dtype=torch.long),
        torch.as_tensor(np.ascontiguousarray(inputs.label), dtype=torch.float32),
    )


def fit_monotone_net(
    spec: FeatureSpec,
    train: ModelInputs,
    valid: ModelInputs,
    cfg: MonotoneNetConfig | None = None,
    device: str | torch.device = "cpu",
) -> MonotoneNetFit:
    """BCE with Adam on ``train`` (seeded; ``device``, CPU by default), early stopping on the AUC of ``valid`` (−validation
    log-loss where the AUC is undefined) with :class:`~ccss_pipeline.model.checkpoint.EarlyStopping`;
    the best epoch's weights are kept."""
    cfg = cfg or MonotoneNetConfig()
    torch.manual_seed(cfg.seed)
    device = torch.device(device)
    model = MonotoneNet(spec, cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(cfg.seed)
    cat, dense, bucket, label = (t.to(device) for t in _tensors(train))
    stopping = EarlyStopping(cfg.patience)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    n = label.shape[0]
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            logit, _ = model(cat[idx], dense[idx], bucket[idx])
            loss = loss_fn(logit, label[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * idx.numel()
        z = predict_logits(cast(Any, model), valid)
        auc = safe_auc(valid.label, z)
        val_loss = float(np.mean(np.logaddexp(0.0, z) - valid.label * z))
        history.append({"epoch": epoch, "train_loss": total / max(n, 1), "val_auc": auc, "val_loss": val_loss})
        if stopping.update(epoch, auc if math.isfinite(auc) else -val_loss):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stopping.stopped:
            break
    model.load_state_dict(best_state)
    model.eval()
    best_auc = history[stopping.best_epoch - 1]["val_auc"] if stopping.best_epoch else math.nan
    return MonotoneNetFit(model, stopping.best_epoch, best_auc, history)


#: What :func:`tune_monotone_net` searches by default: Adam's learning rate and the Lipschitz bound λ (log scales).
LEARNING_RATE_RANGE = SearchRange(low=1e-3, high=3e-2)
LIPSCHITZ_RANGE = SearchRange(low=0.1, high=10.0)


class MonotoneNetSearchSpace(StrictConfig):
    """What :func:`tune_monotone_net` searches; everything else comes from the base :class:`MonotoneNetConfig`."""

    learning_rate: SearchRange = LEARNING_RATE_RANGE
    lipschitz: SearchRange = LIPSCHITZ_RANGE


@dataclass
class MonotoneNetSearchResult:
    """The chosen configuration (best validation AUC) and the study (one fit per trial)."""

    config: MonotoneNetConfig
    study: optuna.Study


def tune_monotone_net(
    spec: FeatureSpec,
    train: ModelInputs,
    valid: ModelInputs,
    plan: StudyPlan,
    base: MonotoneNetConfig | None = None,
    space: MonotoneNetSearchSpace | None = None,
    device: str | torch.device = "cpu",
) -> MonotoneNetSearchResult:
    """``plan.n_trials`` fits of ``base`` (its ``max_epochs`` is each trial's budget) over the learning
    rate and the Lipschitz bound, chosen by seeded multivariate TPE (``base.seed``) on validation AUC; the
    study lives in memory, or under the plan's name (default ``"monotone_net"``) in ``plan.storage``,
    where a later call resumes it (:meth:`ccss_pipeline.model.peer_tuning.StudyPlan.run`).
    ``n_trials == 0`` returns ``base``."""
    import optuna

    base = base or MonotoneNetConfig()
    space = space or MonotoneNetSearchSpace()
    if plan.n_trials == 0:
        study = optuna.create_study(direction="maximize", study_name=plan.name_or("monotone_net"))
        return MonotoneNetSearchResult(base, study)
    learning_rate, lipschitz = space.learning_rate, space.lipschitz

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("learning_rate", learning_rate.low, learning_rate.high, log=learning_rate.log)
        trial.suggest_float("lipschitz", lipschitz.low, lipschitz.high, log=lipschitz.log)
        fit = fit_monotone_net(spec, train, valid, _trial_config(base, trial.params), device)
        trial.set_user_attr("best_epoch", fit.best_epoch)
        return fit.best_auc if math.isfinite(fit.best_auc) else -math.inf

    study = plan.run(objective, base.seed, "monotone_net")
    return MonotoneNetSearchResult(_trial_config(base, study.best_trial.params), study)


def _trial_config(base: MonotoneNetConfig, params: dict[str, Any]) -> MonotoneNetConfig:
    """``base`` with a trial's searched parameters, validated."""
    return MonotoneNetConfig(**{**base.model_dump(), **params})
