"""How much a profile measures unless told otherwise: kept apart from `profile` so the CLI can show these defaults
without importing numpy and onnxruntime (`edgemed devices list` and `--help` stay quick)."""

DEFAULT_RUNS = 200
DEFAULT_WARMUP = 20
