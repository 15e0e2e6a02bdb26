"""Export node: the chosen model of each backbone (CCSS, first seed) to ONNX with its encoding description."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ccss_pipeline.config import TrainingConfig
from ccss_pipeline.model.persistence import TrainedModel, chosen_models
from ccss_pipeline.serving.onnx_export import export_onnx
from ccss_pipeline.spec import FeatureSpec

#: Training facts copied from a model's config into its encoding description (``training``).
TRAINING_FACTS = ("seed", "move", "best_epoch", "best_val_auc", "contrastive")


def export_onnx_models(
    trained_models: Mapping[str, TrainedModel],
    spec: FeatureSpec,
    model_training: TrainingConfig,
) -> dict[str, dict[str, Any]]:
    """``{backbone: {"onnx": bytes, "encoding": dict}}`` for every backbone of ``model_training.backbones``.

    Each chosen model must record the current spec's fingerprint (a model trained on another spec is
    stale and is refused, as the evaluation refuses it); a missing one fails naming what there is.
    """
    exported: dict[str, dict[str, Any]] = {}
    chosen = chosen_models(spec, trained_models, model_training.backbones, model_training.optimizer.seed)
    for backbone, (name, model) in chosen.items():
        trained = trained_models[name]
        config = trained.config()
        buffer = io.BytesIO()
        encoding = export_onnx(
            model.eval(),
            spec,
            buffer,
            variant=trained.variant,
            model_name=name,
            extra={k: config[k] for k in TRAINING_FACTS if config.get(k) is not None},
        )
        exported[backbone] = {"onnx": buffer.getvalue(), "encoding": encoding}
    return exported
