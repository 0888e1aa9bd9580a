"""Export stage: PyTorch checkpoints to ONNX with measured parity (needs the `export` extra)."""
