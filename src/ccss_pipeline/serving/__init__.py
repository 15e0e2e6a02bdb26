"""Serving: trained models exported to ONNX with their input encoding described (Kedro-free)."""

from ccss_pipeline.serving.onnx_export import (
    ENCODING_FORMAT,
    INPUT_NAMES,
    OUTPUT_NAMES,
    OnnxCheck,
    OnnxCheckError,
    encoding_description,
    export_onnx,
    onnx_inputs,
    sample_encoding,
)

__all__ = [
    "ENCODING_FORMAT",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "OnnxCheck",
    "OnnxCheckError",
    "encoding_description",
    "export_onnx",
    "onnx_inputs",
    "sample_encoding",
]
