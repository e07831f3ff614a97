"""Training-curve and other plots, written as PNG files with matplotlib's Agg backend."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lstmkit.files import write_atomic  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Render the figure to PNG and write it atomically, then free it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average, so a noisy per-step loss shows its trend."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_loss_curve(history: dict[str, list], path: Path, title: str, loss_name: str = "loss") -> None:
    """Training loss per step (raw and smoothed) and validation loss, on one set of axes."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    steps, train = history["step"], history["train_loss"]
    if steps:
        ax.plot(steps, train, color="tab:blue", alpha=0.25, linewidth=0.8, label="training (per step)")
        window = max(1, len(train) // 50)
        ax.plot(steps, _smooth(train, window), color="tab:blue", label=f"training (mean of {window} steps)")
    if history["val_step"]:
        ax.plot(history["val_step"], history["val_loss"], "o-", color="tab:orange", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(loss_name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
