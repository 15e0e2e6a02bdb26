"""Project settings: Kedro defaults, with telemetry off and every parameter validated up front."""

from ccss_pipeline.config_loader import RuntimeParamsConfigLoader
from ccss_pipeline.hooks import (
    ConfigurationCheckHooks,
    PairMoveCheckHooks,
    ProjectLockHooks,
    SparkHooks,
    SpecCheckHooks,
)

# all parameter groups are validated before any node runs (see hooks.py), whatever pipeline is run;
# one run at a time per project (run_lock.py)
# `--env spark` builds its SparkSession from conf/spark/spark.yml (the data engine then runs on Spark)
# a node reading the feature spec reads no input built for another spec (lineage.py), and a training node
# no pairs of another move (model/pair_check.py): the spec is checked first, as pluggy calls the last hook first
HOOKS = (ConfigurationCheckHooks(), ProjectLockHooks(), SparkHooks(), PairMoveCheckHooks(), SpecCheckHooks())

# kedro-telemetry must never prompt or send anything from this project.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

# `--params` changes exactly the keys it names (config_loader.py); an environment still replaces a
# top-level parameter group of base as a whole
CONFIG_LOADER_CLASS = RuntimeParamsConfigLoader

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"spark": ["spark*", "spark*/**"]},
}
