"""How much a profile measures unless told otherwise: kept apart from `profile` so the CLI can show these defaults
in its options without importing numpy and onnxruntime (every command's `--help` stays quick)."""

DEFAULT_RUNS = 200
DEFAULT_WARMUP = 20
