"""The project's config loader: ``--params`` changes exactly the keys it names.

Kedro's ``OmegaConfigLoader`` merges runtime parameters into the base files and, separately, into the
environment's files, then lets the environment replace each top-level group of base as a whole. So
``kedro run --env mine --params model_training.optimizer.seed=1`` either dropped the runtime value (when
``mine`` defines ``model_training``) or replaced the whole ``model_training`` group with
``{optimizer: {seed: 1}}`` and defaults (when it does not) — silently either way.

Here the files are merged first (an environment still replaces a top-level group of base as a whole,
so a schema of your own never inherits base's columns), and the runtime parameters are then deep-merged
into the result: every sibling of the named key keeps its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import DictConfig, OmegaConf

PARAMETERS = "parameters"


class RuntimeParamsConfigLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` whose runtime parameters are deep-merged last, into the merged files."""

    def _merge_and_resolve(self, key: str, config_per_file: dict[Path, DictConfig]) -> dict[str, Any]:
        if key != PARAMETERS:
            return super()._merge_and_resolve(key, config_per_file)
        configs = list(config_per_file.values())
        if not configs:
            return {}
        return OmegaConf.to_container(OmegaConf.unsafe_merge(*configs), resolve=True)  # type: ignore[return-value]

    def __getitem__(self, key: str) -> dict[str, Any]:
        config = super().__getitem__(key)
        if key != PARAMETERS or not self.runtime_params or key in self.data:  # data: values set explicitly
            return config
        merged = OmegaConf.merge(OmegaConf.create(config), OmegaConf.create(dict(self.runtime_params)))
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
