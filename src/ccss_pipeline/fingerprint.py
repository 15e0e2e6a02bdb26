"""Content fingerprints, the one home for them: resumable state and stale artifacts are keyed by these.

``content_hash`` hashes JSON-able values (sorted keys, so dict order does not matter);
``array_hash`` hashes the bytes of NumPy arrays. Both are SHA-256, shortened to ``length`` hex digits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import numpy as np

DEFAULT_LENGTH = 16


def content_hash(value: Any, length: int = DEFAULT_LENGTH) -> str:
    """SHA-256 of ``value`` as sorted-key JSON (non-JSON values by ``str``)."""
    payload = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def array_hash(arrays: Iterable[np.ndarray], prefix: str = "", length: int = DEFAULT_LENGTH) -> str:
    """SHA-256 of ``prefix`` and the contiguous bytes of each array, in order."""
    digest = hashlib.sha256(prefix.encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:length]
