"""Counterfactual pair nodes: Shapley importance on a warm-up model, then the compact pair table."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from ccss_pipeline.config import ContrastiveConfig, PairsConfig, TrainingConfig
from ccss_pipeline.lineage import stamp
from ccss_pipeline.model.importance import FeatureImportance, WarmupFit
from ccss_pipeline.model.moves import move_name
from ccss_pipeline.model.pair_stream import pair_chunks
from ccss_pipeline.model.scoring import logit_fn
from ccss_pipeline.model.shapley import shapley_importance
from ccss_pipeline.model.streaming import model_source
from ccss_pipeline.model.trainer import train_model
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import FeatureSpec


def estimate_feature_importance(
    train_model_input: ParquetTable,
    validation_model_input: ParquetTable,
    spec: FeatureSpec,
    counterfactual_pairs: PairsConfig,
    model_training: TrainingConfig,
) -> FeatureImportance:
    """q_k = mean |φ_k| (spec §3.1) on a short λ = 0 fit of the first backbone; p over directed features.

    A split larger than ``model_training.streaming.max_rows_in_memory`` is streamed by the warm-up fit
    and only its sampled rows are read for the Shapley estimate."""
    if not spec.directed:
        raise ValueError(
            "the schema declares no numerical feature with a direction (+1/-1): CCSS has nothing to constrain"
        )
    limit = model_training.streaming.max_rows_in_memory
    train = model_source(train_model_input, spec, limit, "train_model_input")
    valid = model_source(validation_model_input, spec, limit, "validation_model_input")
    backbone = model_training.backbone.model_copy(update={"name": model_training.backbones[0]})
    optimizer = model_training.optimizer.model_copy(update={"max_epochs": counterfactual_pairs.warmup_epochs})
    warmup = train_model(
        spec,
        train,
        valid,
        backbone,
        ContrastiveConfig(weight=0.0),
        optimizer,
        stream_buffer_rows=model_training.streaming.buffer_rows,
    )
    scorer = logit_fn(warmup.model, batch_size=counterfactual_pairs.shapley.batch_size)
    result = shapley_importance(scorer, valid, spec, counterfactual_pairs.shapley)
    return FeatureImportance(
        **result.to_dict(),
        warmup=WarmupFit(backbone=backbone.name, epochs=len(warmup.history), val_auc=warmup.best_val_auc),
        spec_fingerprint=spec.fingerprint,
    )


def materialize_pairs(
    train_model_input: ParquetTable,
    spec: FeatureSpec,
    feature_importance: FeatureImportance,
    counterfactual_pairs: PairsConfig,
) -> Iterator[pd.DataFrame]:
    """One seeded draw per training row, stored compactly (row, feature, the move's points, valid constraints,
    F side); drawn ``chunk_rows`` rows at a time (:mod:`ccss_pipeline.model.pair_stream`) from the table's
    row groups and written chunk by chunk (memory: one chunk, whatever the table's size)."""
    p = feature_importance.draw_probabilities(spec)
    chunks = pair_chunks(
        train_model_input.iter_frames(),
        spec,
        p,
        counterfactual_pairs.seed,
        move_name(counterfactual_pairs.move, counterfactual_pairs.anchor_share),
        counterfactual_pairs.chunk_rows,
    )
    return (stamp(chunk, spec) for chunk in chunks)
