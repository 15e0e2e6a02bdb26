"""Top-level test configuration: no telemetry or analytics from Kedro or Great Expectations, ever.

Set before any test module imports kedro or great_expectations.
"""

from __future__ import annotations

import os

os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "False"
