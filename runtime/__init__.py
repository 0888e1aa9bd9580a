"""Bedside runtime: numpy and onnxruntime only, never torch or onnx."""
