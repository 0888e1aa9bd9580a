"""Training stage: models, data loaders, the trainer and checkpoints (needs the `train` extra)."""
