"""Figures logged with MLflow runs: a training run's metrics by model, training curves and
reliability diagram; a scoring run's published scores, source mix and catalogue coverage."""

from __future__ import annotations

import matplotlib
import numpy as np

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


def score_distribution(score: np.ndarray, source: np.ndarray, title: str):
    """Histogram of the published scores, one panel per source: sources score on different
    scales (a model's click score, popularity's share of recent positives)."""
    names = sorted(set(source.tolist()))
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4 * max(1, len(names)), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        values = score[source == name]
        ax.hist(values[np.isfinite(values)], bins=40, color="#2c3e50")
        ax.set(title=f"{name} ({len(values):,} rows)", xlabel="score", ylabel="rows")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def source_mix(rank: np.ndarray, source: np.ndarray, title: str):
    """Which source filled the lists: share of rows by source, overall and at each rank."""
    names, code = np.unique(source.astype(str), return_inverse=True)
    depth = int(rank.max()) if len(rank) else 1
    rows = np.bincount((rank.astype(np.int64) - 1) * len(names) + code, minlength=depth * len(names)).reshape(depth, len(names))
    at_rank = rows / np.maximum(1, rows.sum(axis=1, keepdims=True))
    fig, (total_ax, rank_ax) = plt.subplots(1, 2, figsize=(12, 3.6))
    total_ax.barh(names, rows.sum(axis=0) / max(1, len(rank)), color="#2980b9")
    total_ax.set(title="share of rows", xlim=(0, 1))
    bottom = np.zeros(depth)
    for j, name in enumerate(names):
        rank_ax.bar(np.arange(1, depth + 1), at_rank[:, j], bottom=bottom, label=name)
        bottom += at_rank[:, j]
    rank_ax.set(title="share of rows at each rank", xlabel="rank", ylim=(0, 1))
    if len(names):
        rank_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def catalogue_coverage(counts: np.ndarray, title: str):
    """How concentrated the lists are, from ``counts`` (how often each recommendable item was
    recommended): the cumulative share of recommendations taken by the most recommended share of
    the items (the diagonal is every item equally often), and the share that appears at all."""
    counts = np.sort(counts)[::-1]
    covered = float((counts > 0).mean()) if len(counts) else float("nan")
    fig, ax = plt.subplots(figsize=(5, 5))
    x = np.arange(len(counts) + 1) / max(1, len(counts))
    y = np.concatenate([[0.0], np.cumsum(counts) / max(1, counts.sum())])
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="every item equally")
    ax.plot(x, y, color="#c0392b", label=f"published lists: {covered:.1%} of items appear")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"share of the {len(counts):,} recommendable items\n(most recommended first)",
           ylabel="cumulative share of recommendations", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
