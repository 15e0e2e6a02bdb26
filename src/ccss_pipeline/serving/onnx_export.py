"""Export a trained :class:`~ccss_pipeline.model.backbones.CTRModel` to ONNX, with its input encoding described.

The ONNX graph takes the **model-ready encoding**, the same three arrays :class:`~ccss_pipeline.spec.ModelInputs`
holds, and returns the click probability (and the logit):

- ``cat``: int64 (N, M), the categorical ids, columns ``cat__<name>`` in spec order (0 = out of vocabulary);
- ``dense``: float32 (N, K), the transformed, standardized values ``num__<name>`` (0 when missing);
- ``bucket``: int64 (N, K), the bucket ids ``bkt__<name>`` (``n_buckets`` = the missing-value bucket);
- outputs ``probability`` float32 (N,) = sigmoid(logit), and ``logit`` float32 (N,): the model's served
  logit, i.e. after its monotone recalibration (:mod:`ccss_pipeline.model.calibration`) when it has one —
  the graph applies the same ``scale · z + shift`` the torch module does (``recalibration`` in the
  description), so a server needs nothing beyond the graph.

N is dynamic. :func:`encoding_description` writes this down per model (input names, dtypes, shapes, the
model-ready column behind every position, id ranges, the spec fingerprint, backbone and variant) as a
JSON-able dict; :func:`export_onnx` writes it beside the ``.onnx`` file (and into the model's metadata
as ``ccss_encoding``). :func:`onnx_inputs` builds the input arrays from a model-ready table.

The exporter is torch's TorchScript-based one (``dynamo=False``): it needs nothing beyond torch and
``onnx``, works offline, and gives a plain graph (Gather, Concat, Gemm/MatMul, Relu, Sigmoid) at opset
17. Every export is checked with ``onnx.checker`` and then scored with onnxruntime against torch on
seeded random rows of the spec's encoding; a difference above ``tolerance`` fails the export.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch

from ccss_pipeline.files import atomic_write
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.calibration import Recalibration
from ccss_pipeline.spec import FeatureSpec

#: ``format`` of the encoding description; bump ``ENCODING_VERSION`` when its meaning changes
#: (2: ``logit`` is the recalibrated logit and ``recalibration`` says which map the graph applies).
ENCODING_FORMAT = "ccss-onnx-encoding"
ENCODING_VERSION = 2
OPSET = 17
INPUT_NAMES = ("cat", "dense", "bucket")
OUTPUT_NAMES = ("probability", "logit")
BATCH = "batch"
#: Key of the encoding description in the ONNX model's ``metadata_props``.
METADATA_KEY = "ccss_encoding"
_DTYPES = {"cat": "int64", "dense": "float32", "bucket": "int64"}


class OnnxCheckError(RuntimeError):
    """The exported graph does not reproduce the torch model (or onnxruntime cannot run it)."""


@dataclass(frozen=True)
class OnnxCheck:
    """How every export is checked: onnxruntime scores ``rows`` seeded random rows of the spec's
    encoding, and a probability further than ``tolerance`` from torch's fails the export."""

    rows: int = 512
    tolerance: float = 1e-5


# ------------------------------------------------------------------------------------ description
def _input_entries(spec: FeatureSpec) -> list[dict[str, Any]]:
    """The three inputs of the graph: dtype, shape, the model-ready column behind every position, id ranges."""
    cat_cols = [c.column for c in spec.categorical]
    return [
        {
            "name": "cat",
            "dtype": _DTYPES["cat"],
            "shape": [BATCH, len(cat_cols)],
            "columns": cat_cols,
            "features": [c.name for c in spec.categorical],
            "cardinalities": [int(c.vocab_size) for c in spec.categorical],
            "meaning": "categorical ids from the feature spec's vocabularies; 0 = out of vocabulary; "
            "valid ids are 0 .. cardinality - 1",
        },
        {
            "name": "dense",
            "dtype": _DTYPES["dense"],
            "shape": [BATCH, len(spec.numerical)],
            "columns": [n.dense_column for n in spec.numerical],
            "features": [n.name for n in spec.numerical],
            "meaning": "numerical values after the feature spec's transform and standardization; 0 when missing",
        },
        {
            "name": "bucket",
            "dtype": _DTYPES["bucket"],
            "shape": [BATCH, len(spec.numerical)],
            "columns": [n.bucket_column for n in spec.numerical],
            "features": [n.name for n in spec.numerical],
            "cardinalities": [int(n.n_buckets) + 1 for n in spec.numerical],
            "missing_bucket": [int(n.missing_bucket) for n in spec.numerical],
            "meaning": "bucket ids of the same numerical values (feature spec boundaries); "
            "id n_buckets (= cardinality - 1) is the missing-value bucket",
        },
    ]


def _output_entries() -> list[dict[str, Any]]:
    """The two outputs of the graph (the same for every model)."""
    return [
        {
            "name": "probability",
            "dtype": "float32",
            "shape": [BATCH],
            "meaning": "click probability, sigmoid(logit)",
        },
        {
            "name": "logit",
            "dtype": "float32",
            "shape": [BATCH],
            "meaning": "the model's logit after its recalibration (scale * raw logit + shift; "
            "a strictly increasing map, so rankings are those of the raw logit)",
        },
    ]


def encoding_description(
    spec: FeatureSpec,
    backbone: str,
    variant: str | None = None,
    model_name: str | None = None,
    opset: int = OPSET,
    extra: Mapping[str, Any] | None = None,
    recalibration: Recalibration | None = None,
) -> dict[str, Any]:
    """The JSON-able description of the graph's inputs and outputs for a model built on ``spec``;
    ``recalibration``: the map the graph applies to the logit (none when not given)."""
    recalibration = recalibration or Recalibration()
    return {
        "format": ENCODING_FORMAT,
        "format_version": ENCODING_VERSION,
        "model": model_name,
        "backbone": backbone,
        "variant": variant,
        "spec_fingerprint": spec.fingerprint,
        "spec_source": spec.source,
        "opset": opset,
        "exporter": f"torch.onnx.export (TorchScript, dynamo=False), torch {torch.__version__}",
        "batch_dimension": BATCH,
        "inputs": _input_entries(spec),
        "outputs": _output_entries(),
        "recalibration": recalibration.to_dict(),
        "note": "inputs are the model-ready encoding (data/05_model_input/*.parquet); raw values are encoded "
        "with the feature spec whose fingerprint is spec_fingerprint (data/04_feature/feature_spec.json)",
        **({"training": dict(extra)} if extra else {}),
    }


def onnx_inputs(frame: pd.DataFrame, description: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The graph's input arrays from a model-ready table, in the described order and dtypes.

    Fails naming the missing columns, an id outside its cardinality (it would silently read another
    feature's embedding row) and a non-finite dense value.
    """
    needed = [c for inp in description["inputs"] for c in inp["columns"]]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise KeyError(f"the table lacks columns the ONNX model's encoding needs: {missing}")
    arrays: dict[str, np.ndarray] = {}
    for inp in description["inputs"]:
        dtype = np.dtype(inp["dtype"])
        cols = inp["columns"]
        arr = frame[cols].to_numpy(dtype) if cols else np.zeros((len(frame), 0), dtype)
        arr = np.ascontiguousarray(arr)
        if "cardinalities" in inp and arr.size:
            bad = (arr < 0) | (arr >= np.asarray(inp["cardinalities"], np.int64))
            if bad.any():
                j = int(np.flatnonzero(bad.any(0))[0])
                raise ValueError(
                    f"column {cols[j]!r} has ids outside 0 .. {inp['cardinalities'][j] - 1} "
                    f"(e.g. {int(arr[bad[:, j], j][0])})"
                )
        if dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
            j = int(np.flatnonzero(~np.isfinite(arr).all(0))[0])
            raise ValueError(f"column {cols[j]!r} has non-finite values (model-ready tables encode missing as 0)")
        arrays[inp["name"]] = arr
    return arrays


# ------------------------------------------------------------------------------------------- export
class _Scorer(torch.nn.Module):
    """(cat, dense, bucket) -> (probability, logit), the graph that is exported."""

    def __init__(self, model: CTRModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, cat: torch.Tensor, dense: torch.Tensor, bucket: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.model.served_logit(cat, dense, bucket)  # the recalibration, when there is one, in the graph
        return torch.sigmoid(logit).float(), logit.float()


def sample_encoding(spec: FeatureSpec, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` seeded random rows of valid model-ready inputs for ``spec`` (missing buckets included)."""
    rng = np.random.default_rng(seed)
    cat = (
        np.stack([rng.integers(0, c.vocab_size, n) for c in spec.categorical], 1)
        if spec.categorical
        else np.zeros((n, 0), np.int64)
    )
    bucket = (
        np.stack([rng.integers(0, f.n_buckets + 1, n) for f in spec.numerical], 1)
        if spec.numerical
        else np.zeros((n, 0), np.int64)
    )
    dense = np.zeros(bucket.shape, np.float32)
    for k, f in enumerate(spec.numerical):
        centres = np.append(np.asarray(f.centres_dense, np.float64), 0.0)  # the missing bucket's dense value is 0
        dense[:, k] = centres[bucket[:, k]] + np.where(bucket[:, k] < f.n_buckets, rng.normal(0, 0.05, n), 0.0)
    return {"cat": cat.astype(np.int64), "dense": dense, "bucket": bucket.astype(np.int64)}


def _export_bytes(scorer: _Scorer, spec: FeatureSpec, opset: int) -> bytes:
    sample = sample_encoding(spec, 2, seed=1)  # batch 2, not 1: nothing gets specialised to a single row
    args = tuple(torch.from_numpy(sample[k]) for k in INPUT_NAMES)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch marks the TorchScript exporter deprecated; it is what works offline
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            scorer,
            args,
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to any file object
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: BATCH} for name in (*INPUT_NAMES, *OUTPUT_NAMES)},
            do_constant_folding=True,
        )
    return buffer.getvalue()


def _finish(raw: bytes, description: Mapping[str, Any]) -> bytes:
    """Embed the description, name the producer, and run ``onnx.checker`` (full check) on the graph."""
    import onnx

    proto = onnx.load_from_string(raw)
    proto.doc_string = (
        f"CCSS CTR model {description.get('model') or description['backbone']}: "
        f"inputs {list(INPUT_NAMES)}, outputs {list(OUTPUT_NAMES)}; encoding in metadata '{METADATA_KEY}'"
    )
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(description, sort_keys=True)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "spec_fingerprint", str(description["spec_fingerprint"])
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise OnnxCheckError(f"the exported graph fails onnx.checker: {exc}") from exc
    return proto.SerializeToString()


def _check_with_onnxruntime(
    data: bytes, scorer: _Scorer, spec: FeatureSpec, rows: int, tolerance: float
) -> dict[str, Any]:
    """Score ``rows`` seeded random rows with onnxruntime and with torch; fail above ``tolerance``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        sample = sample_encoding(spec, rows, seed=0)
        prob, logit = session.run(list(OUTPUT_NAMES), sample)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise OnnxCheckError(f"onnxruntime cannot run the exported graph: {type(exc).__name__}: {exc}") from exc
    with torch.no_grad():
        p_t, z_t = scorer(*(torch.from_numpy(sample[k]) for k in INPUT_NAMES))
    diff_p = float(np.max(np.abs(prob.astype(np.float64) - p_t.double().numpy()), initial=0.0))
    diff_z = float(np.max(np.abs(logit.astype(np.float64) - z_t.double().numpy()), initial=0.0))
    if prob.shape != (rows,) or prob.dtype != np.float32 or not diff_p <= tolerance:
        raise OnnxCheckError(
            f"onnxruntime and torch disagree on {rows} rows: max |Δp| = {diff_p:.3g} "
            f"(tolerance {tolerance:g}), output {prob.dtype} {prob.shape}"
        )
    return {
        "rows": rows,
        "max_abs_diff_probability": diff_p,
        "max_abs_diff_logit": diff_z,
        "tolerance": tolerance,
        "onnxruntime": ort.__version__,
    }


def export_onnx(
    model: CTRModel,
    spec: FeatureSpec,
    path_or_buffer: str | Path | IO[bytes],
    *,
    variant: str | None = None,
    model_name: str | None = None,
    opset: int = OPSET,
    extra: Mapping[str, Any] | None = None,
    check: OnnxCheck = OnnxCheck(),
) -> dict[str, Any]:
    """Export ``model`` (built on ``spec``) to ONNX; returns the encoding description.

    ``path_or_buffer``: a file path (``<name>.onnx``; the description is written beside it as
    ``<name>.json``, both atomically) or a binary buffer (only the ONNX bytes are written). The model is
    exported from a float32 CPU copy in eval mode; the caller's model is left as it was. The graph is
    checked with ``onnx.checker`` and scored with onnxruntime on ``check.rows`` seeded random rows; a
    probability differing from torch's by more than ``check.tolerance`` raises :class:`OnnxCheckError`.
    The result of that check is the description's ``check`` entry.
    """
    if opset < OPSET:
        raise ValueError(f"opset must be at least {OPSET}, got {opset}")
    description = encoding_description(spec, model.cfg.name, variant, model_name, opset, extra, model.recalibration)
    scorer = _Scorer(copy.deepcopy(model).cpu().float().eval()).eval()
    data = _finish(_export_bytes(scorer, spec, opset), description)
    description["check"] = _check_with_onnxruntime(data, scorer, spec, max(int(check.rows), 1), check.tolerance)
    if isinstance(path_or_buffer, (str, Path)):
        path = Path(path_or_buffer)
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
        text = json.dumps(description, indent=2)
        atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    else:
        path_or_buffer.write(data)
    return description
