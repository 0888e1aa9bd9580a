"""Training curves as a PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_history(history: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="weighted cross-entropy", title="loss")
    ax_loss.legend()
    ax_metric.plot(epochs, [h["val_macro_f1"] or 0 for h in history], "o-", label="macro-F1")
    ax_metric.plot(epochs, [h["val_accuracy"] or 0 for h in history], "o-", label="accuracy")
    ax_metric.set(xlabel="epoch", ylim=(0, 1.02), title="validation")
    ax_metric.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
