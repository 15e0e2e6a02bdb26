"""ccss-pipeline: CCSS (contrastive learning with counterfactual samples synthesizing) as a Kedro project."""

import os

# Never prompt and never reach the network for telemetry or analytics, whoever imports us first.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

__version__ = "0.1.0"
