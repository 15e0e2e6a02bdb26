"""What a monotonicity method is, and the registry that finds one by name (``model_training.method``).

Why one pluggable choice: CCSS is one way to make the logit move the declared way with a directed
feature; the point-wise gradient penalty (``pwl``) and monotonicity hints (``hints``) are the usual
alternatives. Compared fairly they share everything else — the backbones, the budget, the λ = 0
baselines, the search's two objectives and its raw-grid measurement — so a method owns only what
differs between them:

- its **training-time term** (:meth:`MonotonicityMethod.bind` gives, for one fit, a function of the
  training step and a batch returning the batch's logits and the term that is added to BCE with
  weight λ = ``contrastive.weight``); the trainer calls it and never branches on the method;
- its **search space** (:meth:`MonotonicityMethod.suggest`), λ's range among it
  (:meth:`MonotonicityMethod.weight_range`: the λ refinement bisects down to its low end);
- its **defaults and settings** (:meth:`MonotonicityMethod.from_training`, from its own typed block of
  ``model_training``: validated by pydantic before anything runs) and what of them a fit's checkpoint
  and a study's name must depend on (:meth:`MonotonicityMethod.fingerprint`,
  :meth:`MonotonicityMethod.study_key`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from ccss_pipeline.config import ContrastiveConfig, SearchRange, TrainingConfig
from ccss_pipeline.model.batches import Batch
from ccss_pipeline.spec import FeatureSpec

if TYPE_CHECKING:  # the trainer imports this module; Optuna is the search's
    import optuna

#: One fit's per-batch term: (training step, batch, contrastive settings) -> (logits of the batch's
#: rows (B,), the term to weigh by λ, or None for the plain BCE). The step is the module whose
#: ``forward(cat, dense, bucket)`` gives (logit, hidden) and whose ``forward(..., p, feature,
#: point_bucket, point_dense)`` also scores moved points (``train_step.StepForward``, DDP-wrapped or not).
BatchTerm = Callable[[torch.nn.Module, Batch, ContrastiveConfig], tuple[torch.Tensor, torch.Tensor | None]]

DEFAULT_METHOD = "ccss"


def plain_term(step: torch.nn.Module, batch: Batch, cfg: ContrastiveConfig) -> tuple[torch.Tensor, None]:
    """The plain forward and no term: a method with nothing to constrain (a spec without directed features)."""
    z_o, _ = step(batch.cat, batch.dense, batch.bucket)
    return z_o, None


class MonotonicityMethod(ABC):
    """One way of making the model monotone in its directed features, with its settings."""

    #: the name in ``model_training.method``
    name: ClassVar[str]
    #: whether its term needs the counterfactual pair table (only these fits get it, and draw pairs)
    uses_pairs: ClassVar[bool] = False
    #: trial parameters of its own beyond the contrastive ones; the chosen values come back as ``tuned``
    own_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def from_training(cls, training: TrainingConfig, tuned: Mapping[str, float] | None = None) -> MonotonicityMethod:
        """The method with its configured settings, ``tuned`` (trial parameters the search chose) applied."""

    @abstractmethod
    def suggest(
        self, trial: optuna.trial.BaseTrial, training: TrainingConfig
    ) -> tuple[ContrastiveConfig, MonotonicityMethod]:
        """One trial's point: the contrastive settings (λ at least) and the method with the trial's settings."""

    @abstractmethod
    def weight_range(self, training: TrainingConfig) -> SearchRange:
        """The range :meth:`suggest` draws λ from; the search's λ refinement bisects no lower than its low end."""

    @abstractmethod
    def bind(self, spec: FeatureSpec, device: torch.device, pair_rows: int) -> BatchTerm:
        """The per-batch term of one fit on ``spec``: device tensors built once, ``pair_rows`` the rows of a
        batch that get a counterfactual (``contrastive.pair_fraction`` of it), for the methods that draw any."""

    def settings(self) -> dict[str, Any]:
        """The settings that shape the trained weights (beyond ``contrastive``): saved with the model."""
        return {}

    def fingerprint(self) -> list[Any]:
        """What a checkpoint must match beyond the contrastive settings; empty for CCSS, so the checkpoints
        written before methods existed still resume."""
        return [self.name, self.settings()]

    def study_key(self, training: TrainingConfig) -> list[Any]:
        """What a study's name must depend on beyond the contrastive and search settings (its own block,
        search ranges included); empty for CCSS, so the studies started before methods existed resume."""
        block = getattr(training, self.name)
        return [self.name, block.model_dump()]


M = TypeVar("M", bound=type[MonotonicityMethod])
_REGISTRY: dict[str, type[MonotonicityMethod]] = {}


def register(cls: M) -> M:
    """Class decorator: make the method findable by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def method_names() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)


def get_method(name: str) -> type[MonotonicityMethod]:
    """The method class called ``name``; an unknown name fails listing the allowed ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown monotonicity method {name!r}; allowed: {method_names()}")
    return _REGISTRY[name]


def method_of(training: TrainingConfig, tuned: Mapping[str, float] | None = None) -> MonotonicityMethod:
    """The configured method (``training.method``) with its settings, ``tuned`` trial parameters applied."""
    return get_method(training.method).from_training(training, tuned)
