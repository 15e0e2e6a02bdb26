"""What-if curves: a row's predicted probability as one directed feature's raw value moves.

The same machinery as the raw-grid evaluation (:mod:`ccss_pipeline.evaluation.raw_grid`): every value
is encoded by the fitted transformer exactly as at inference, so the dense input and the bucket id
move together, and scoring is float32. A notebook calls :func:`what_if`; the ``what_if`` pipeline
writes :func:`what_if_table` for chosen rows and plots it with :func:`plot_what_if`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.evaluation.plots import prob_label
from ccss_pipeline.evaluation.raw_grid import raw_grid
from ccss_pipeline.spec import FeatureSpec, ModelInputs

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
COLUMNS = ["row", "model", "feature", "direction", "value", "probability"]


def _scorer(model: object) -> Scorer:
    """A scorer ``(cat, dense, bucket) -> prob`` from a CTRModel (float32, eval mode) or a callable."""
    if callable(model) and not hasattr(model, "state_dict"):
        return model
    from ccss_pipeline.model.scoring import score_fn  # torch only when a model is given

    return score_fn(model)  # type: ignore[arg-type]


def what_if(
    model: object, spec: FeatureSpec, rows: ModelInputs, feature: str, values: Sequence[float] | np.ndarray
) -> np.ndarray:
    """``(len(rows), len(values))`` probabilities with ``feature`` set to each raw value in turn.

    ``model`` is a trained :class:`~ccss_pipeline.model.backbones.CTRModel` or a scorer
    ``(cat, dense, bucket) -> prob``; every other input of a row stays as it is.
    """
    names = [f.name for f in spec.numerical]
    if feature not in names:
        raise KeyError(f"'{feature}' is not a numerical feature of the spec (numerical: {names})")
    k = names.index(feature)
    grid = np.asarray(values, dtype=np.float64)
    dense_v, bucket_v = encode_numerical(grid, spec.numerical[k])
    n, g = len(rows), grid.size
    dense = np.repeat(rows.dense, g, axis=0)
    bucket = np.repeat(rows.bucket, g, axis=0)
    dense[:, k] = np.tile(dense_v, n)
    bucket[:, k] = np.tile(bucket_v, n)
    probability = _scorer(model)(np.repeat(rows.cat, g, axis=0), dense, bucket)
    return np.asarray(probability, dtype=np.float64).reshape(n, g)


def what_if_table(
    models: Mapping[str, object], spec: FeatureSpec, rows: ModelInputs, row_ids: Sequence[int], levels: int = 50
) -> pd.DataFrame:
    """Long table (:data:`COLUMNS`): each model, row and directed feature over ``levels`` quantile levels
    of the feature's training values (de-duplicated, as in the raw-grid evaluation)."""
    frames = []
    for model_name, model in models.items():
        for f in spec.directed:
            values = raw_grid(f, levels)
            probability = what_if(model, spec, rows, f.name, values)
            frames.append(
                pd.DataFrame(
                    {
                        "row": np.repeat(np.asarray(row_ids), values.size),
                        "model": model_name,
                        "feature": f.name,
                        "direction": f.direction,
                        "value": np.tile(values, len(rows)),
                        "probability": probability.ravel(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def plot_what_if(table: pd.DataFrame, row: int, label_name: str = "label") -> Figure:
    """One figure per row: a panel per directed feature, a line per model, the raw value on x."""
    part = table[table["row"] == row]
    features = list(dict.fromkeys(part["feature"]))
    fig = Figure(figsize=(4.2 * max(len(features), 1), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(features), 1), squeeze=False)[0]
    for ax, feature in zip(axes, features, strict=False):
        curve = part[part["feature"] == feature]
        for i, (model_name, line) in enumerate(curve.groupby("model", sort=True)):
            ax.plot(line["value"], line["probability"], color=f"C{i % 10}", label=str(model_name))
        direction = int(curve["direction"].iloc[0])
        ax.set_title(f"{feature} ({'+1' if direction > 0 else '-1'})")
        ax.set_xlabel(f"{feature} (raw value)")
        ax.set_ylabel(prob_label(label_name))
        ax.legend(fontsize=7)
    fig.suptitle(f"What if — test row {row}")
    return fig
