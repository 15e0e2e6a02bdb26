"""How the evaluation documents say things: one home for what the report and the model card share.

- **Formatters**: a figure (:func:`fmt_value`), a mean ± std over seeds (:func:`fmt_mean_std`), a
  signed difference (:func:`fmt_diff`), a paired 95% interval (:func:`fmt_interval`), a direction, a
  hyper-parameter; a missing value renders as "n/a" (or "—" for a parameter).
- **Names**: the headline metrics and their labels (:data:`HEADLINE`), which of them are shares, how a
  variant is shown and ordered (baseline, CCSS, any other method).
- **The GAUC rule** (:func:`gauc_note`): why GAUC is not reported, in one wording for the evaluation
  node (one model), the report and the card (every model).
- **Figures**: where each figure sits (:data:`PLOT_DIR`, :func:`ice_path`, …), its caption in the report
  (:func:`report_plots`) and in the card (:func:`card_plots`), and how the HTML embeds it
  (:func:`png_data_uri`, :func:`plot_figure`).

Pure functions on plain values; nothing here draws or renders a document.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ccss_pipeline.config import Variant
from ccss_pipeline.evaluation.render import Figure
from ccss_pipeline.evaluation.seeds import TOO_FEW_SEEDS, format_mean_std, share_interval
from ccss_pipeline.spec import FeatureSpec

#: the variants the report names and orders first (:class:`ccss_pipeline.config.Variant`)
BASELINE, CCSS = Variant.BASELINE, Variant.CCSS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Headline rows: (metric, label, is a share). Shown when the summary has the metric. ``{t}`` in a
#: label is the decision threshold of the thresholded metrics (``evaluation.threshold``).
HEADLINE = [
    ("auc", "AUC", False),
    ("gauc", "GAUC", False),
    ("logloss", "LogLoss", False),
    ("logloss_uncalibrated", "LogLoss before recalibration", False),
    ("accuracy", "accuracy (P ≥ {t})", False),
    ("precision", "precision (P ≥ {t})", False),
    ("recall", "recall (P ≥ {t})", False),
    ("f1", "F1 (P ≥ {t})", False),
    ("brier", "Brier score", False),
    ("brier_uncalibrated", "Brier score before recalibration", False),
    ("recalibration_temperature", "recalibration: T (the logit is divided by T)", False),
    ("recalibration_shift", "recalibration: shift b (Platt)", False),
    ("oracle_auc", "oracle AUC (ceiling)", False),
    ("wrong_step_share", "raw-grid wrong-step share (pooled)", True),
    ("wrong_step_share_inside", "… steps inside a bucket", True),
    ("wrong_step_share_crossing", "… steps crossing an edge", True),
    ("max_feature_wrong_step_share", "worst feature's wrong-step share", True),
    ("edge_wrong_share", "edge test: rows moving the wrong way", True),
    ("monotone_row_share", "rows monotone over the whole grid", True),
    ("neighbour_violation_rate", "secondary: neighbour-move violation rate (the move the loss trains)", True),
    ("ice_monotone_share", "secondary: bucket-centre ICE monotone share", True),
    ("true_direction_agreement", "agreement with the true directions", True),
]
#: metric → its label in the tables (``{t}``: the threshold)
METRIC_LABELS = {m: label for m, label, _ in HEADLINE}
#: the metrics that are shares (shown as percentages, their differences in percentage points)
SHARE_METRICS = {m for m, _, share in HEADLINE if share}


def metric_label(metric: str, threshold: float) -> str:
    """The table label of ``metric`` with the decision threshold filled in."""
    return METRIC_LABELS.get(metric, metric).replace("{t}", f"{threshold:g}")


# ------------------------------------------------------------------------------------------ formatters


def as_float(v: Any) -> float:
    """``float(v)``, NaN for what is not a number (None, text)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def is_missing(v: Any) -> bool:
    return v is None or not math.isfinite(as_float(v))


def pct_digits(v: Any) -> int:
    """2 decimals of a percentage, more for small values so that 0.004% does not read as 0.00%."""
    p = abs(100 * as_float(v))
    return 2 if is_missing(v) or p == 0 or p >= 0.1 else min(4, 1 - math.floor(math.log10(p)))


def fmt_mean_std(mean: Any, std: Any, share: bool) -> str:
    if share:
        return format_mean_std(as_float(mean), as_float(std), pct=True, digits=pct_digits(mean))
    return format_mean_std(as_float(mean), as_float(std))


def fmt_value(v: Any, share: bool) -> str:
    """4 decimals, or a percentage for a share; "n/a" when missing."""
    if is_missing(v):
        return "n/a"
    return f"{100 * float(v):.{pct_digits(v)}f}%" if share else f"{float(v):.4f}"


def fmt_diff(v: Any, share: bool, digits: int = 2) -> str:
    """A signed difference: 4 decimals, or percentage points for shares."""
    if is_missing(v):
        return "n/a"
    return f"{100 * float(v):+.{digits}f} pp" if share else f"{float(v):+.4f}"


def fmt_direction(d: int) -> str:
    return f"{int(d):+d}"


def fmt_param(v: Any) -> str:
    return "—" if is_missing(v) and not isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def interval_bounds(row: Mapping[str, Any] | None, share: bool) -> tuple[float, float] | None:
    """The paired difference's interval as it may be read: a difference of shares through
    :func:`.seeds.share_interval` (clipped to ±100 pp, none with too few seeds); None without one."""
    if row is None or is_missing(row.get("ci_low")) or is_missing(row.get("ci_high")):
        return None
    low, high = as_float(row["ci_low"]), as_float(row["ci_high"])
    if share:
        n = int(as_float(row.get("n")) if not is_missing(row.get("n")) else 0)
        return share_interval(low, high, n, difference=True)
    return low, high


def fmt_interval(row: Mapping[str, Any] | None, share: bool) -> str:
    bounds = interval_bounds(row, share)
    if bounds is None:
        return TOO_FEW_SEEDS if share else "n/a (needs ≥ 2 paired seeds)"
    digits = pct_digits((row or {}).get("mean"))
    return f"[{fmt_diff(bounds[0], share, digits)}, {fmt_diff(bounds[1], share, digits)}]"


def sign_of_interval(row: Mapping[str, Any] | None, share: bool = False) -> str | None:
    """ "below" / "above" 0, "contains" 0, or None without an interval (the one :func:`fmt_interval` prints)."""
    bounds = interval_bounds(row, share)
    if bounds is None:
        return None
    return "below" if bounds[1] < 0 else "above" if bounds[0] > 0 else "contains"


# ------------------------------------------------------------------------------------ names and order


def variant_rank(variant: object) -> int:
    """Baseline first, CCSS second, any other method after them."""
    v = str(variant).lower()
    return 0 if v == BASELINE else 1 if v == CCSS else 2


def variant_display(variant: object) -> str:
    """How a variant is named: "CCSS" (any case), every other one as it is."""
    return "CCSS" if str(variant).lower() == CCSS else str(variant)


def label_name(spec: FeatureSpec) -> str:
    """What the models predict (the schema's label column), as every text and axis names it."""
    return str(getattr(spec, "label_name", "label") or "label")


def has_user_column(spec: FeatureSpec) -> bool:
    return bool(getattr(spec, "has_user", True))


def one_bucket_features(spec: FeatureSpec) -> list[str]:
    """Directed features with a single bucket: CCSS cannot constrain them, nothing is measurable."""
    return [f.name for f in spec.directed if f.n_buckets < 2]


def display_order(preferred: Iterable[str], present: Iterable[str]) -> list[str]:
    """``present`` (deduplicated) with those in ``preferred`` first, in its order: the backbones in the
    order of ``best_params``, then any other evaluated one."""
    shown = list(dict.fromkeys(present))
    first = [b for b in preferred if b in shown]
    return first + [b for b in shown if b not in first]


# ---------------------------------------------------------------------------------------- the GAUC rule

NO_USER_GAUC = "GAUC: n/a — the schema declares no user column"
ONE_USER_GAUC = "GAUC: n/a — every test row has the same user, so GAUC would only repeat the AUC"
NO_BOTH_CLASSES_GAUC = "GAUC: n/a — no user has both classes in the test split"


def _why_no_gauc(accuracy: Mapping[str, Any]) -> str | None:
    """One model's reason ("" when it has a GAUC; None: none, and no reason recorded)."""
    gauc = as_float(accuracy.get("gauc", math.nan))
    if "gauc_note" in accuracy or "n_groups" not in accuracy:  # as the evaluation recorded it
        return "" if math.isfinite(gauc) else (str(accuracy.get("gauc_note") or "") or None)
    if int(accuracy.get("n_groups", 0)) <= 1:
        return ONE_USER_GAUC
    if int(accuracy.get("gauc_groups", 0)) == 0 or not math.isfinite(gauc):
        return NO_BOTH_CLASSES_GAUC
    return ""


def gauc_note(has_user: bool, accuracies: Iterable[Mapping[str, Any]]) -> str:
    """Why GAUC is not reported, "" when it is: the schema declares no user column, every test row has
    the same user (GAUC would only repeat the AUC), or no user has both classes.

    ``accuracies``: one model's fresh :func:`.accuracy.accuracy_metrics` (the evaluation node, which then
    records the note beside a NaN GAUC) or every model's recorded accuracy (the report and the card:
    GAUC is shown when some model has one, else the first recorded reason)."""
    if not has_user:
        return NO_USER_GAUC
    reasons = [_why_no_gauc(a) for a in accuracies]
    if not reasons or any(r == "" for r in reasons):
        return ""
    return next((r for r in reasons if r), NO_BOTH_CLASSES_GAUC)


# -------------------------------------------------------------------------------------------- figures

#: The figures' folder, relative to the documents' folder (``data/08_reporting``).
PLOT_DIR = "plots"
#: Headings of the report's figure groups (a group of the card is its backbone).
HEADLINE_ICE = "Raw-grid ICE (headline)"
BUCKET_CENTRE_PD = "Bucket-centre partial dependence (secondary)"


#: the raw-grid ICE figures (``ice_<backbone>_<feature>.png``) and the bucket-centre PD figures
RAW_GRID_DIR = f"{PLOT_DIR}/raw_grid"
PD_DIR = f"{PLOT_DIR}/partial_dependence"


def ice_name(backbone: str, feature: str) -> str:
    return f"ice_{backbone}_{feature}.png"


def pd_name(backbone: str, feature: str) -> str:
    return f"pd_{backbone}_{feature}.png"


def ice_path(backbone: str, feature: str) -> str:
    return f"{RAW_GRID_DIR}/{ice_name(backbone, feature)}"


def pd_path(backbone: str, feature: str) -> str:
    return f"{PD_DIR}/{pd_name(backbone, feature)}"


def plot_path(name: str) -> str:
    """A figure of the whole evaluation: ``violation_rate``, ``roc``, ``calibration``."""
    return f"{PLOT_DIR}/{name}.png"


#: the Optuna plots of the model-training stage (``<backbone>_<name>.png``) and their captions
OPTUNA_DIR = f"{PLOT_DIR}/optuna"
OPTUNA_CAPTIONS = {
    "pareto": "validation AUC against wrong-step share per trial",
    "history": "optimization history (validation AUC)",
    "importance": "parameter importances for validation AUC",
}


@dataclass
class PlotRef:
    """A figure file, ``path`` relative to the report's directory, shown under the heading ``section``;
    ``png``: the image itself, which the HTML embeds (the Markdown links ``path``)."""

    path: str
    caption: str
    section: str = "Figures"
    png: bytes | None = None


def report_plots(backbones: list[str], spec: FeatureSpec) -> list[PlotRef]:
    """The figures of the report, in order, without bytes; a one-bucket feature's figures (a "not
    constrained" note, which the per-feature table already gives) are left out."""
    one_bucket = set(one_bucket_features(spec))
    directed = [f for f in spec.directed if f.name not in one_bucket]
    plots = [
        PlotRef(ice_path(b, f.name), f"{f.name} ({b}): mean prediction over the raw-value grid with the ICE band "
                "(10–90%); dotted lines are the bucket edges", HEADLINE_ICE)
        for b in backbones for f in directed
    ]  # fmt: skip
    plots += [
        PlotRef(
            plot_path("violation_rate"),
            "Raw-grid wrong-step share per directed feature, mean ± std over seeds",
            "Raw-grid wrong-step share",
        ),
        PlotRef(plot_path("roc"), "ROC curves on the test split (first seed)", "Accuracy"),
        PlotRef(plot_path("calibration"), "Calibration on the test split (first seed)", "Accuracy"),
    ]
    plots += [
        PlotRef(pd_path(b, f.name), f"{f.name} ({b}): mean prediction at the bucket centres with the ICE band "
                "(10–90%)", BUCKET_CENTRE_PD)
        for b in backbones for f in directed
    ]  # fmt: skip
    plots += [
        PlotRef(f"{OPTUNA_DIR}/{b}_{name}.png", f"{b}: {caption}", f"Optuna search ({b})")
        for b in backbones for name, caption in OPTUNA_CAPTIONS.items()
    ]  # fmt: skip
    return plots


def card_plots(backbones: list[str], spec: FeatureSpec) -> list[PlotRef]:
    """Each backbone's raw-grid ICE figures in the model card (``PlotRef.section`` = the backbone),
    without bytes; a one-bucket feature has none."""
    one_bucket, label = set(one_bucket_features(spec)), label_name(spec)
    return [
        PlotRef(ice_path(b, f.name), f"{f.name} ({b}): mean P({label}) over the raw-value grid (training range) with "
                "the ICE band (10–90%), baseline and CCSS; dotted lines are the bucket edges", b)
        for b in backbones for f in spec.directed if f.name not in one_bucket
    ]  # fmt: skip


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes (refuses bytes that are not a PNG)."""
    if not bytes(png).startswith(PNG_SIGNATURE):
        raise ValueError("image bytes are not a PNG")
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


def plot_figure(plot: PlotRef) -> Figure:
    """The view of a plot: its path, caption and, where it has bytes, their data URI."""
    return Figure(plot.path, plot.caption, png_data_uri(plot.png) if plot.png else None)
