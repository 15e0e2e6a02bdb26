"""Device choice and seeding: one place so training, scoring and tests agree on both."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU fails loudly instead of silently using CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda")
    raise ValueError(f"unknown device {name!r}; allowed: 'auto', 'cpu', 'cuda'")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed every RNG a run touches so a CPU run is bit-for-bit repeatable.

    The ops the models use are deterministic on CPU once seeded (tested). ``deterministic=True`` also
    switches torch to deterministic algorithms process-wide (for CUDA); it is off by default because it
    slows CPU embedding backward ~1.5x and changes global state of the caller's process.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
