"""Export node: the chosen model of each backbone (CCSS, first seed) to ONNX with its encoding description."""

from __future__ import annotations

import io
from typing import Any

from ccss_pipeline.config import BackboneConfig, TrainingConfig
from ccss_pipeline.lineage import SPEC_KEY, StaleArtifactError, require_spec
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.pipelines.model_training.nodes import CCSS, model_key
from ccss_pipeline.serving.onnx_export import export_onnx
from ccss_pipeline.spec import FeatureSpec

#: Training facts copied from a model's config into its encoding description (``training``).
TRAINING_FACTS = ("seed", "move", "best_epoch", "best_val_auc", "contrastive")


def chosen_model(backbone: str, model_training: TrainingConfig) -> str:
    """The model served for ``backbone``: its CCSS fit with the first seed (``optimizer.seed``)."""
    return model_key(backbone, CCSS, model_training.optimizer.seed)


def export_onnx_models(
    trained_models: dict[str, dict[str, Any]],
    feature_spec: dict[str, Any],
    model_training: TrainingConfig,
) -> dict[str, dict[str, Any]]:
    """``{backbone: {"onnx": bytes, "encoding": dict}}`` for every backbone of ``model_training.backbones``.

    Each chosen model must record the current spec's fingerprint (a model trained on another spec is
    stale and is refused, as the evaluation refuses it); a missing one fails naming what there is.
    """
    spec = FeatureSpec.from_dict(feature_spec)
    exported: dict[str, dict[str, Any]] = {}
    for backbone in model_training.backbones:
        name = chosen_model(backbone, model_training)
        if name not in trained_models:
            raise StaleArtifactError(
                f"'trained_models' has no {name!r} (the CCSS model of backbone {backbone!r} with the first seed "
                f"{model_training.optimizer.seed}); it has {sorted(trained_models)}. Train it with "
                "`kedro run --pipelines=model_training`"
            )
        entry = trained_models[name]
        config = entry["config"]
        require_spec(f"trained_models['{name}']", {SPEC_KEY: config.get("spec_hash")}, spec, "model_training")
        model = CTRModel(spec, BackboneConfig(**config["backbone"]))
        model.load_state_dict(entry["state_dict"])
        buffer = io.BytesIO()
        encoding = export_onnx(
            model.eval(),
            spec,
            buffer,
            variant=config.get("variant", CCSS),
            model_name=name,
            extra={k: config[k] for k in TRAINING_FACTS if k in config},
        )
        exported[backbone] = {"onnx": buffer.getvalue(), "encoding": encoding}
    return exported
