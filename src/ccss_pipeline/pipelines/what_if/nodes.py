"""What-if nodes: chosen test rows' probability over each directed feature's raw values, per model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ccss_pipeline.config import EvaluationConfig
from ccss_pipeline.evaluation.what_if import plot_what_if, what_if_table
from ccss_pipeline.model.persistence import TrainedModel, first_seed_models
from ccss_pipeline.spec import FeatureSpec, ModelInputs


def _rows(n: int, evaluation: EvaluationConfig) -> np.ndarray:
    cfg = evaluation.what_if
    if cfg.rows is not None:
        bad = [r for r in cfg.rows if r >= n]
        if bad:
            raise ValueError(f"evaluation.what_if.rows {bad} are beyond the test split's {n} rows")
        return np.asarray(cfg.rows, dtype=np.int64)
    return np.sort(np.random.default_rng(cfg.seed).choice(n, size=min(cfg.n_rows, n), replace=False))


def what_if_curves(
    test_model_input: pd.DataFrame,
    spec: FeatureSpec,
    trained_models: Mapping[str, TrainedModel],
    evaluation: EvaluationConfig,
) -> pd.DataFrame:
    """The first seed's CCSS and baseline model of every backbone on the chosen test rows (positions in
    the test split), each directed feature swept over ``what_if.levels`` quantile levels."""
    test = ModelInputs.from_frame(test_model_input, spec)
    rows = _rows(len(test), evaluation)
    models = {
        f"{backbone} {variant}": trained_models[name].rebuild(spec)
        for (backbone, variant), name in first_seed_models(trained_models).items()
    }
    return what_if_table(models, spec, test.take(rows), rows.tolist(), evaluation.what_if.levels)


def plot_what_if_curves(what_if_curves: pd.DataFrame, spec: FeatureSpec) -> dict[str, Figure]:
    """One figure per chosen row: ``row_<position>.png``."""
    label = spec.label_name
    return {
        f"row_{int(r)}.png": plot_what_if(what_if_curves, int(r), label) for r in sorted(what_if_curves["row"].unique())
    }
