"""Monotone recalibration of a trained model's logit, fitted on the validation split.

CCSS's contrastive loss moves logits to make the output go the declared way; nothing in it keeps the
probabilities' level and spread calibrated (on the KuaiRand slice the CCSS models came out over-confident,
T = 1.05–1.14).
A :class:`Recalibration` maps the logit z to ``scale · z + shift`` before the sigmoid:

- ``none``: the identity (``scale = 1``, ``shift = 0``);
- ``temperature``: z / T, i.e. ``scale = 1 / T`` and ``shift = 0`` (one parameter);
- ``platt``: σ(a · z + b) with a > 0 (``scale = a``, ``shift = b``; Platt scaling on the logit).

``scale > 0`` always, so the map is strictly increasing in z: it keeps the order of every pair of scores
(AUC and GAUC are unchanged) and the sign of every step of every what-if or raw-grid curve (every
monotone direction the model has stays, every wrong step stays wrong). Only the level and spread of the
probabilities move. The parameters minimise the validation LogLoss (scipy's L-BFGS-B on log a, and b,
with the analytic gradient, started at the identity), so the fitted map never does worse than the
identity on the split it is fitted on.

Plain numpy/scipy: the module that serves the probability (:class:`ccss_pipeline.model.backbones.CTRModel`)
carries the record and applies the same map to its logit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

RecalibrationKind = Literal["none", "temperature", "platt"]
#: The kinds :meth:`Recalibration.fit` knows (``model_training.recalibration`` takes the same values).
KINDS: tuple[str, ...] = get_args(RecalibrationKind)

#: Bounds of the fitted log-scale and shift: wide enough for any sane model (T between 1e-3 and 1e3),
#: narrow enough that a degenerate split (near-separable logits) cannot push the map to infinity.
LOG_SCALE_BOUNDS = (math.log(1e-3), math.log(1e3))
SHIFT_BOUNDS = (-30.0, 30.0)


@dataclass(frozen=True)
class Recalibration:
    """A strictly increasing map of the logit, z ↦ ``scale`` · z + ``shift`` (``scale`` > 0).

    Frozen: it is a fact about a trained model, stored with it (``model.json``'s ``recalibration``)."""

    kind: RecalibrationKind = "none"
    scale: float = 1.0
    shift: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"recalibration kind must be one of {list(KINDS)}, got {self.kind!r}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(
                f"recalibration scale must be finite and > 0 (a strictly increasing map), got {self.scale}"
            )
        if not math.isfinite(self.shift):
            raise ValueError(f"recalibration shift must be finite, got {self.shift}")
        if self.kind == "none" and (self.scale != 1.0 or self.shift != 0.0):
            raise ValueError(f"recalibration 'none' is the identity, got scale {self.scale}, shift {self.shift}")
        if self.kind == "temperature" and self.shift != 0.0:
            raise ValueError(f"temperature scaling has no shift, got {self.shift}")

    @property
    def is_identity(self) -> bool:
        """True when the map changes nothing (kind none, or a fit that landed exactly on the identity)."""
        return self.scale == 1.0 and self.shift == 0.0

    @property
    def temperature(self) -> float:
        """T = 1 / scale: the logit is divided by T (above 1: the model was over-confident)."""
        return 1.0 / self.scale

    # ------------------------------------------------------------------------------------------ use
    def apply(self, logits: np.ndarray) -> np.ndarray:
        """The recalibrated logits, in float64 (so distinct float32 logits stay distinct)."""
        z = np.asarray(logits, dtype=np.float64)
        return z if self.is_identity else z * self.scale + self.shift

    def probability(self, logits: np.ndarray) -> np.ndarray:
        """σ(recalibrated logit), in float64."""
        return np.asarray(expit(self.apply(logits)), dtype=np.float64)

    def log_loss(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """Mean negative log-likelihood of ``labels`` (0/1) under σ(recalibrated logit), computed on the
        logit (softplus), so it stays exact where the probability would round to 0 or 1."""
        z, y = _checked(logits, labels)
        s = self.apply(z)
        return float(np.mean(np.logaddexp(0.0, s) - y * s))

    def describe(self) -> str:
        """One phrase for logs and reports, e.g. ``temperature scaling (T = 1.234)``."""
        if self.kind == "temperature":
            return f"temperature scaling (T = {self.temperature:.4g})"
        if self.kind == "platt":
            return f"Platt scaling (a = {self.scale:.4g}, b = {self.shift:+.4g})"
        return "no recalibration"

    # ------------------------------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray, kind: str) -> Recalibration:
        """The map of ``kind`` that minimises the LogLoss of ``labels`` under σ(map(``logits``)).

        ``temperature`` fits log(1/T); ``platt`` fits log a and b (a = e^{log a} > 0 by construction,
        so no fit can reverse the order). The optimiser starts at the identity and a result worse than
        it (which L-BFGS-B should never return) falls back to it. Needs both classes in ``labels``."""
        if kind not in KINDS:
            raise ValueError(f"recalibration kind must be one of {list(KINDS)}, got {kind!r}")
        if kind == "none":
            return cls()
        z, y = _checked(logits, labels)
        if y.size == 0 or y.min() == y.max():
            raise ValueError(
                f"a {kind} recalibration needs both classes on the split it is fitted on "
                f"(got {y.size} rows, {int(y.sum())} positive)"
            )
        with_shift = kind == "platt"
        start = np.zeros(2 if with_shift else 1)
        bounds = [LOG_SCALE_BOUNDS, SHIFT_BOUNDS] if with_shift else [LOG_SCALE_BOUNDS]
        result = minimize(_nll_and_grad, start, args=(z, y, with_shift), jac=True, method="L-BFGS-B", bounds=bounds)
        theta = np.asarray(result.x, dtype=np.float64)
        if (
            not np.all(np.isfinite(theta))
            or _nll_and_grad(theta, z, y, with_shift)[0] > _nll_and_grad(start, z, y, with_shift)[0]
        ):
            return cls(cast(RecalibrationKind, kind))  # the identity, named by the kind asked for
        scale = float(math.exp(theta[0]))
        return cls(cast(RecalibrationKind, kind), scale, float(theta[1]) if with_shift else 0.0)

    # ------------------------------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "scale", "shift", "temperature"}``: JSON-able (``temperature`` is for readers only)."""
        return {"kind": self.kind, "scale": self.scale, "shift": self.shift, "temperature": self.temperature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Recalibration:
        """The record of :meth:`to_dict`; ``None`` (a ``model.json`` written before recalibration
        existed) is ``none``."""
        if data is None:
            return cls()
        unknown = set(data) - {"kind", "scale", "shift", "temperature"}
        if unknown:
            raise ValueError(f"unknown recalibration keys {sorted(unknown)}")
        kind = str(data.get("kind", "none"))
        if kind not in KINDS:
            raise ValueError(f"recalibration kind must be one of {list(KINDS)}, got {kind!r}")
        return cls(cast(RecalibrationKind, kind), float(data.get("scale", 1.0)), float(data.get("shift", 0.0)))


def _checked(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits and 0/1 labels as float64 vectors of one length; non-finite logits are refused."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if z.size != y.size:
        raise ValueError(f"logits and labels differ in length: {z.size} vs {y.size}")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain non-finite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    return z, y


def _nll_and_grad(theta: np.ndarray, z: np.ndarray, y: np.ndarray, with_shift: bool) -> tuple[float, np.ndarray]:
    """Mean NLL of σ(e^{θ0}·z + θ1) and its gradient in θ (θ1 = 0 without a shift)."""
    scale = math.exp(float(theta[0]))
    shift = float(theta[1]) if with_shift else 0.0
    s = scale * z + shift
    nll = float(np.mean(np.logaddexp(0.0, s) - y * s))
    residual = expit(s) - y
    d_log_scale = float(np.mean(residual * z)) * scale
    grad = [d_log_scale, float(np.mean(residual))] if with_shift else [d_log_scale]
    return nll, np.asarray(grad)
