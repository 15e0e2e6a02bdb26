"""Tests of the ONNX export for serving."""
