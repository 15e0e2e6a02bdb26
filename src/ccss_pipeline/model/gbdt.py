"""A gradient-boosted tree model monotone by construction in the directed features (issue 27).

LightGBM with ``monotone_constraints``: the direction ``d_k`` of each directed numerical feature, 0 for
every other input. Every tree then only splits on a constrained feature where the child on the higher
side keeps the declared order with every leaf below it, so the model's output is monotone in that
input for **any** fixed value of the others — a guarantee of the fit, not a property to be measured.

Inputs (the encoded ones every backbone sees, :class:`~ccss_pipeline.spec.ModelInputs`):

- the ``dense`` value of every numerical feature, constrained by its direction, and beside it an
  unconstrained 0/1 column "missing" (bucket ``missing_bucket``; the dense value is then 0, as the
  encoder writes it). **Not NaN**: measured here, LightGBM 4.7.0's ``advanced`` method gives a model that
  is *not* monotone when a constrained column holds NaN (a three-feature table with 10% NaN in the
  constrained one: 158 of 60,000 grid steps the wrong way; ``basic`` and ``intermediate`` 0; without NaN
  0 for all three; on the test table of ``tests/model/test_gbdt.py`` with NaN, ``intermediate`` 3 and
  ``advanced`` 251 wrong steps) — LightGBM's issues #5358 and #6155 report ``advanced`` models that are
  not monotone. The flag keeps every constrained column finite, and the model is monotone in ``dense``
  for either value of the flag, hence along every raw path (a swept value is never missing);
- the categorical ids ``cat`` as LightGBM categoricals (0 = out of vocabulary, like any other id);
- **not** the bucket ids: they are a step function of the raw value the dense input already carries,
  and an unconstrained input that jumps at every bucket edge would break the guarantee there (the
  edge test of :mod:`ccss_pipeline.evaluation.raw_grid` isolates exactly that jump).

Why a constraint on ``dense`` is one on the raw value. :func:`ccss_pipeline.encoding.encode_numerical`
maps a finite raw value x to ``float32(clip((t(x) − mean) / std, −10, 10))`` with ``t`` the identity or
``sign(x)·log1p|x|`` (both strictly increasing) and ``std > 0`` (the fit replaces a zero std by 1.0). That map is
**non-decreasing, not strictly increasing**: the clip makes it flat beyond ±10 σ and the float32 cast
maps nearby raw values to one dense value. Non-decreasing is all the guarantee needs — a function
monotone in ``dense`` composed with a non-decreasing map is monotone in the raw value (flat pieces stay
flat, never wrong). Non-finite raw values (NaN, ±inf) are "missing" and leave the ordered line: they are
not covered, as in every other model of the project.

The fitted :class:`MonotoneGBDT` is a raw-grid ``Scorer`` as it is (``model(cat, dense, bucket) -> prob``);
:func:`tune_gbdt` runs an Optuna study (seeded multivariate TPE, ``n_trials`` fits) on validation AUC,
with early stopping on the validation split inside every fit. Saved as LightGBM's model text plus a
JSON of the configuration and input layout (no pickle). ``lightgbm`` is the optional extra ``compare``
(``pip install -e ".[compare]"``), imported only when a model is fitted or loaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from ccss_pipeline.config import SearchRange, StrictConfig
from ccss_pipeline.files import atomic_write
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.scoring import safe_auc
from ccss_pipeline.spec import FeatureSpec, ModelInputs

if TYPE_CHECKING:  # the extra is optional: imported lazily at run time
    import lightgbm
    import optuna

    from ccss_pipeline.model.peer_tuning import StudyPlan

MODEL_FILE = "model.txt"
META_FILE = "gbdt.json"
FORMAT_VERSION = 1
EXTRA_HINT = 'pip install -e ".[compare]"'


def _lightgbm() -> Any:
    """``import lightgbm``, or an error naming the extra that brings it."""
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"the monotone GBDT needs LightGBM, in the optional extra 'compare': {EXTRA_HINT}") from exc
    return lightgbm


class GBDTConfig(StrictConfig):
    """One LightGBM fit. ``n_estimators`` is the most boosting rounds; the fit stops after
    ``early_stopping_rounds`` rounds without a better validation AUC and keeps the best round.

    ``monotone_constraints_method``: every method of LightGBM gives an exactly monotone model; they
    differ in how much they over-constrain it. LightGBM's documentation: ``basic`` "does not slow the
    library at all, but over-constrains the predictions", ``intermediate`` is "much less constraining",
    ``advanced`` "even less constraining than the intermediate method" at some cost in speed — hence
    ``advanced`` here. Measured exact only without NaN in a constrained column, which
    :meth:`InputLayout.matrix` guarantees (module docstring). ``monotone=False`` fits the same model without constraints (the reference row
    that shows what the constraint costs and what it prevents)."""

    num_leaves: int = Field(31, ge=2, le=131_072)
    learning_rate: float = Field(0.05, gt=0, le=1)
    n_estimators: int = Field(500, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    min_child_samples: int = Field(20, ge=1)
    lambda_l2: float = Field(0.0, ge=0)
    max_bin: int = Field(255, ge=2)
    seed: int = Field(0, ge=0)
    num_threads: int = Field(1, ge=0)  # 0: LightGBM's default (OpenMP's thread count)
    monotone: bool = True
    monotone_constraints_method: Literal["basic", "intermediate", "advanced"] = "advanced"
    monotone_penalty: float = Field(0.0, ge=0)  # > 0 keeps constrained splits out of the first levels

    def lightgbm_params(self, constraints: Sequence[int]) -> dict[str, Any]:
        """LightGBM's parameters of this fit, deterministic for one seed and thread count."""
        params: dict[str, Any] = {
            "objective": "binary",
            "metric": "auc",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,  # LightGBM's advice with deterministic=True
            "feature_pre_filter": False,  # min_child_samples varies between trials
            "verbosity": -1,
        }
        if self.monotone and any(constraints):
            params["monotone_constraints"] = [int(c) for c in constraints]
            params["monotone_constraints_method"] = self.monotone_constraints_method
            params["monotone_penalty"] = self.monotone_penalty
        return params


class GBDTSearchSpace(StrictConfig):
    """What :func:`tune_gbdt` searches; everything else comes from the base :class:`GBDTConfig`."""

    num_leaves: SearchRange = SearchRange(low=7, high=127)
    learning_rate: SearchRange = SearchRange(low=0.01, high=0.3)
    min_child_samples: SearchRange = SearchRange(low=5, high=200)
    lambda_l2: SearchRange = SearchRange(low=1e-3, high=10.0)


@dataclass(frozen=True)
class InputLayout:
    """Which matrix column is which input, its constraint, and where a numerical value is missing.

    Columns: the categoricals in spec order, every numerical feature's dense value, then every numerical
    feature's missing flag."""

    categorical: list[str]
    numerical: list[str]
    directions: list[int]
    missing_buckets: list[int]
    spec_fingerprint: str

    @classmethod
    def of(cls, spec: FeatureSpec) -> InputLayout:
        return cls(
            categorical=[c.name for c in spec.categorical],
            numerical=[n.name for n in spec.numerical],
            directions=[int(np.sign(n.direction)) for n in spec.numerical],
            missing_buckets=[n.missing_bucket for n in spec.numerical],
            spec_fingerprint=spec.fingerprint,
        )

    @property
    def feature_names(self) -> list[str]:
        return (
            [f"cat__{c}" for c in self.categorical]
            + [f"num__{n}" for n in self.numerical]
            + [f"missing__{n}" for n in self.numerical]
        )

    @property
    def categorical_columns(self) -> list[int]:
        return list(range(len(self.categorical)))

    @property
    def constraints(self) -> list[int]:
        """Per column: the direction for a dense value (0 when undirected), 0 for the rest."""
        return [0] * len(self.categorical) + list(self.directions) + [0] * len(self.numerical)

    def matrix(self, cat: np.ndarray, dense: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        """The float64 LightGBM matrix of encoded inputs: ids as numbers, dense values, missing flags.

        A value is missing where its bucket is the missing bucket (or, defensively, where its dense value
        is not finite); its dense column is then 0, never NaN (see the module's docstring)."""
        cat, dense, bucket = np.asarray(cat), np.asarray(dense), np.asarray(bucket)
        if cat.shape[1] != len(self.categorical) or dense.shape[1] != len(self.numerical):
            raise ValueError(
                f"inputs have {cat.shape[1]} categorical and {dense.shape[1]} numerical columns, the model "
                f"{len(self.categorical)} and {len(self.numerical)}"
            )
        values = dense.astype(np.float64, copy=True)
        missing = (bucket == np.asarray(self.missing_buckets, dtype=np.int64)) | ~np.isfinite(values)
        values[missing] = 0.0
        return np.concatenate([cat.astype(np.float64), values, missing.astype(np.float64)], axis=1)


@dataclass
class MonotoneGBDT:
    """A fitted LightGBM model over the encoded inputs; a raw-grid ``Scorer`` as it is."""

    booster: lightgbm.Booster
    layout: InputLayout
    config: GBDTConfig
    best_iteration: int
    val_auc: float = math.nan
    history: list[float] = field(default_factory=list)  # validation AUC per boosting round

    def predict_logit(self, cat: np.ndarray, dense: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        """Raw scores (logits), float64."""
        x = self.layout.matrix(cat, dense, bucket)
        return np.asarray(
            self.booster.predict(
                x, num_iteration=self.best_iteration, raw_score=True, num_threads=self.config.num_threads
            ),
            dtype=np.float64,
        )

    def predict_proba(self, cat: np.ndarray, dense: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        """Click probabilities, float64: ``scorer(cat, dense, bucket) -> prob`` of the raw-grid sweep."""
        return 1.0 / (1.0 + np.exp(-self.predict_logit(cat, dense, bucket)))

    __call__ = predict_proba

    def predict_inputs(self, inputs: ModelInputs) -> np.ndarray:
        return self.predict_proba(inputs.cat, inputs.dense, inputs.bucket)

    def save(self, folder: str | Path) -> Path:
        """Write ``model.txt`` (LightGBM's text format, best round only) and ``gbdt.json`` into ``folder``
        (replaced as a whole, atomically)."""
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": "lightgbm-monotone",
            "config": self.config.model_dump(),
            "layout": {
                "categorical": self.layout.categorical,
                "numerical": self.layout.numerical,
                "directions": self.layout.directions,
                "missing_buckets": self.layout.missing_buckets,
            },
            "spec_fingerprint": self.layout.spec_fingerprint,
            "best_iteration": self.best_iteration,
            "val_auc": None if math.isnan(self.val_auc) else self.val_auc,
            "history": self.history,
        }

        def write(tmp: Path) -> None:
            tmp.mkdir()
            self.booster.save_model(str(tmp / MODEL_FILE), num_iteration=self.best_iteration)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))

        return atomic_write(folder, write)

    @classmethod
    def load(cls, folder: str | Path, spec: FeatureSpec | None = None) -> MonotoneGBDT:
        """Read a saved model; with ``spec``, refuse one fitted for another feature spec."""
        lgb = _lightgbm()
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / META_FILE}: format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        layout = InputLayout(**meta["layout"], spec_fingerprint=str(meta["spec_fingerprint"]))
        if spec is not None and spec.fingerprint != layout.spec_fingerprint:
            raise StaleArtifactError(
                f"the GBDT in {folder} was fitted for feature spec {layout.spec_fingerprint}, not the current "
                f"{spec.fingerprint}: fit it again"
            )
        booster = lgb.Booster(model_file=str(folder / MODEL_FILE))
        val_auc = meta.get("val_auc")
        return cls(
            booster=booster,
            layout=layout,
            config=GBDTConfig(**meta["config"]),
            best_iteration=int(meta["best_iteration"]),
            val_auc=math.nan if val_auc is None else float(val_auc),
            history=[float(v) for v in meta.get("history", [])],
        )


def _dataset(lgb: Any, layout: InputLayout, inputs: ModelInputs, reference: Any = None) -> Any:
    return lgb.Dataset(
        layout.matrix(inputs.cat, inputs.dense, inputs.bucket),
        label=np.asarray(inputs.label, dtype=np.float64),
        feature_name=layout.feature_names,
        categorical_feature=layout.categorical_columns,
        reference=reference,
        free_raw_data=False,
    )


def fit_gbdt(spec: FeatureSpec, train: ModelInputs, valid: ModelInputs, cfg: GBDTConfig | None = None) -> MonotoneGBDT:
    """Fit one LightGBM model on ``train``, early-stopped on the AUC of ``valid``; the best round is kept."""
    lgb = _lightgbm()
    cfg = cfg or GBDTConfig()
    layout = InputLayout.of(spec)
    dtrain = _dataset(lgb, layout, train)
    dvalid = _dataset(lgb, layout, valid, reference=dtrain)
    record: dict[str, Any] = {}
    booster = lgb.train(
        cfg.lightgbm_params(layout.constraints),
        dtrain,
        num_boost_round=cfg.n_estimators,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(record),
        ],
    )
    best = int(booster.best_iteration) or booster.current_iteration()
    model = MonotoneGBDT(booster, layout, cfg, best, history=[float(v) for v in record["valid"]["auc"]])
    model.val_auc = safe_auc(valid.label, model.predict_inputs(valid))
    return model


@dataclass
class GBDTSearchResult:
    """The best fit of a study, its configuration, and the study (one trial per fit)."""

    model: MonotoneGBDT
    config: GBDTConfig
    study: optuna.Study


def tune_gbdt(
    spec: FeatureSpec,
    train: ModelInputs,
    valid: ModelInputs,
    plan: StudyPlan,
    base: GBDTConfig | None = None,
    space: GBDTSearchSpace | None = None,
) -> GBDTSearchResult:
    """``plan.n_trials`` fits chosen by seeded multivariate TPE (``base.seed``; the first
    ``plan.n_startup_trials`` random), each early-stopped on validation; the one with the best validation
    AUC is returned, as fitted (no refit). ``n_trials == 0`` fits ``base`` once. The study lives in
    memory, or under the plan's name (default ``"gbdt"``) in ``plan.storage``, where a later call resumes
    it (:meth:`ccss_pipeline.model.peer_tuning.StudyPlan.run`); a best trial of an earlier run is fitted
    again from its parameters (a fit is deterministic)."""
    import optuna

    base = base or GBDTConfig()
    space = space or GBDTSearchSpace()
    if plan.n_trials < 0:
        raise ValueError(f"n_trials must be >= 0, got {plan.n_trials}")
    if plan.n_trials == 0:
        study = optuna.create_study(direction="maximize", study_name=plan.name_or("gbdt"))
        return GBDTSearchResult(fit_gbdt(spec, train, valid, base), base, study)
    fitted: dict[int, MonotoneGBDT] = {}

    def objective(trial: optuna.Trial) -> float:
        def draw(name: str, r: SearchRange, integer: bool = False) -> float | int:
            if integer:
                return trial.suggest_int(name, int(r.low), int(r.high), log=r.log)
            return trial.suggest_float(name, r.low, r.high, log=r.log)

        draw("num_leaves", space.num_leaves, integer=True)
        draw("learning_rate", space.learning_rate)
        draw("min_child_samples", space.min_child_samples, integer=True)
        draw("lambda_l2", space.lambda_l2)
        model = fit_gbdt(spec, train, valid, _trial_config(base, trial.params))
        trial.set_user_attr("best_iteration", model.best_iteration)
        fitted[trial.number] = model
        return model.val_auc if math.isfinite(model.val_auc) else -math.inf

    study = plan.run(objective, base.seed, "gbdt")
    best = study.best_trial
    config = _trial_config(base, best.params)
    model = fitted.get(best.number) or fit_gbdt(spec, train, valid, config)
    return GBDTSearchResult(model, config, study)


def _trial_config(base: GBDTConfig, params: dict[str, Any]) -> GBDTConfig:
    """``base`` with a trial's searched parameters, validated."""
    return GBDTConfig(**{**base.model_dump(), **params})
