"""Figures logged with each training run: metrics by model, and training curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def metrics_by_model(results: dict[str, dict[str, float]], names: list[str], title: str):
    models = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], names, strict=True):
        values = [results[m].get(metric, float("nan")) for m in models]
        ax.barh(models, values, color=["#c0392b" if m.startswith("llmrec") else "#7f8c8d" for m in models])
        ax.set_title(metric)
        ax.invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(curves: dict[str, list[dict[str, float]]], metric: str):
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, rows in curves.items():
        epochs = range(1, len(rows) + 1)
        loss_ax.plot(epochs, [r["train_loss"] for r in rows], label=name)
        if rows and "val_metric" in rows[0]:
            val_ax.plot(epochs, [r["val_metric"] for r in rows], label=name)
    loss_ax.set(title="training loss", xlabel="epoch")
    val_ax.set(title=f"validation {metric}", xlabel="epoch")
    val_ax.legend()
    fig.tight_layout()
    return fig


def reliability_diagram(tables: dict[str, list[tuple[float, float, int]]], title: str):
    """Observed share of clicks against predicted probability, one line per model; the diagonal
    is perfect calibration."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for name, table in tables.items():
        if table:
            pred, seen, _ = zip(*table, strict=True)
            ax.plot(pred, seen, marker="o", label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted p(click)", ylabel="observed share of clicks", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
