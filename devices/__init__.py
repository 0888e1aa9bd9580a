"""Profiles of bedside and embedded deployment targets (TOML data files; no torch, no onnx)."""
