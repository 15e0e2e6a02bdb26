"""What the constraint costs: CCSS's pair fraction × λ, against the λ = 0 baseline, seed for seed.

The search picks λ on validation; this sweep holds everything else of a backbone's chosen parameters
fixed and varies only ``contrastive.pair_fraction`` (the share of each batch that gets a pair) and λ (a
multiple of the chosen one), then scores every fit on the test split: paired ΔAUC and ΔLogLoss (CCSS −
baseline on the same seed, mean and 95% t-interval), and the CCSS model's raw-grid wrong steps and edge
test (the evaluation's own sweep, 200 levels on 2,000 test rows). It answers "does a lower-variance
constraint let a weaker λ meet the targets, and what does that buy" (``docs/method.md`` §5).

Run after a ``kedro run`` of the project in ``--project`` (its splits, pairs and ``best_params``):

    python benchmarks/constraint_strength.py --backbone dnn --seeds 5 \\
        --settings 0.1:1 0.1:0.5 0.3:1 0.3:0.5 0.3:0.3

Each setting is ``pair_fraction:λ-multiple``. Writes benchmarks/results/constraint_strength_<backbone>.json
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import log_loss, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402


def _load(project: Path) -> dict[str, Any]:
    """The run's splits, pairs, spec, training settings and chosen parameters, through its catalog."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from ccss_pipeline.config import TrainingConfig
    from ccss_pipeline.model.streaming import model_source
    from ccss_pipeline.model.synthesis import PairTable
    from ccss_pipeline.spec import ModelInputs

    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()
        catalog = context.catalog
        spec = catalog.load("feature_spec")
        return {
            "spec": spec,
            "training": TrainingConfig.model_validate(context.params["model_training"]),
            "evaluation": context.params["evaluation"],
            "train": model_source(catalog.load("train_model_input"), spec, None, "train_model_input"),
            "valid": model_source(catalog.load("validation_model_input"), spec, None, "validation_model_input"),
            # the catalog holds the test split in memory (evaluation's), the pairs lazily
            "test": ModelInputs.from_frame(catalog.load("test_model_input"), spec),
            "pairs": PairTable.from_frame(catalog.load("counterfactual_pairs").frame()),
            "chosen": catalog.load("best_params"),
        }


def _fit_and_score(run: dict[str, Any], backbone: str, contrastive: Any, seed: int, with_pairs: bool) -> dict:
    """One fit on the run's training split, scored on its test split."""
    from ccss_pipeline.evaluation.raw_grid import raw_grid_report
    from ccss_pipeline.model.scoring import predict_logits, score_fn
    from ccss_pipeline.model.trainer import train_model

    training, chosen = run["training"], run["chosen"][backbone]
    optimizer = training.optimizer.model_copy(update={"learning_rate": chosen.learning_rate, "seed": seed})
    backbone_cfg = training.backbone.model_copy(update={"name": backbone})
    t0 = time.perf_counter()
    result = train_model(
        run["spec"],
        run["train"],
        run["valid"],
        backbone_cfg,
        contrastive,
        optimizer,
        pairs=run["pairs"] if with_pairs else None,
    )
    seconds = time.perf_counter() - t0
    z = predict_logits(result.model, run["test"])
    label = run["test"].label
    out = {
        "auc": float(roc_auc_score(label, z)),
        "logloss": float(log_loss(label, 1.0 / (1.0 + np.exp(-z)))),
        "best_epoch": result.best_epoch,
        "seconds": seconds,
    }
    if with_pairs:
        grid = raw_grid_report(score_fn(result.model), run["test"], run["spec"], levels=200, rows=2000, seed=0)
        out["wrong_step_share"] = float(grid.pooled["wrong_step_share"])
        out["edge_wrong_share"] = float(grid.pooled["edge_wrong_share"])
    return out


def _interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval of paired differences."""
    d = np.asarray(diffs)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def sweep(run: dict[str, Any], backbone: str, seeds: list[int], settings: list[tuple[float, float]]) -> list[dict]:
    """Per setting: the paired differences against the seed's baseline and the CCSS model's monotonicity."""
    training, chosen = run["training"], run["chosen"][backbone]
    tuned = training.contrastive.model_copy(update=chosen.tuned())
    baseline_cfg = training.contrastive.model_copy(update={"weight": 0.0})
    baselines = {seed: _fit_and_score(run, backbone, baseline_cfg, seed, False) for seed in seeds}
    rows = []
    for pair_fraction, multiple in settings:
        ccss_cfg = tuned.model_copy(update={"pair_fraction": pair_fraction, "weight": tuned.weight * multiple})
        fits = {seed: _fit_and_score(run, backbone, ccss_cfg, seed, True) for seed in seeds}
        auc = _interval([fits[s]["auc"] - baselines[s]["auc"] for s in seeds])
        loss = _interval([fits[s]["logloss"] - baselines[s]["logloss"] for s in seeds])
        rows.append(
            {
                "pair_fraction": pair_fraction,
                "weight": ccss_cfg.weight,
                "delta_auc": auc,
                "delta_logloss": loss,
                "wrong_step_share": float(np.mean([fits[s]["wrong_step_share"] for s in seeds])),
                "edge_wrong_share": float(np.mean([fits[s]["edge_wrong_share"] for s in seeds])),
                "time_ratio": float(
                    np.sum([fits[s]["seconds"] for s in seeds]) / np.sum([baselines[s]["seconds"] for s in seeds])
                ),
                "fits": fits,
            }
        )
        print(markdown_row(rows[-1]), flush=True)
    return rows


def markdown_row(row: dict[str, Any]) -> str:
    m, lo, hi = row["delta_auc"]
    return (
        f"| {row['pair_fraction']:.2f} | {row['weight']:.2f} | {m:+.5f} [{lo:+.5f}, {hi:+.5f}] | "
        f"{row['delta_logloss'][0]:+.5f} | {row['wrong_step_share']:.2%} | {row['edge_wrong_share']:.2%} | "
        f"{row['time_ratio']:.1f}× |"
    )


HEADER = (
    "| pair fraction | λ | ΔAUC (95% CI) | ΔLogLoss | wrong steps (CCSS) | edge test (CCSS) | time / baseline |\n"
    "|---|---|---|---|---|---|---|"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=ROOT, help="a project folder after a `kedro run`")
    ap.add_argument("--backbone", default="dnn")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--settings", nargs="+", default=["0.1:1", "0.1:0.5", "0.3:1", "0.3:0.5", "0.3:0.3"])
    args = ap.parse_args()
    settings = [(float(a), float(b)) for a, b in (s.split(":") for s in args.settings)]
    run = _load(args.project.resolve())
    seeds = [run["training"].optimizer.seed + i for i in range(args.seeds)]
    print(HEADER, flush=True)
    rows = sweep(run, args.backbone, seeds, settings)
    out = ROOT / "benchmarks" / "results" / f"constraint_strength_{args.backbone}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": machine_info(), "backbone": args.backbone, "seeds": seeds, "rows": rows}, indent=2)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
