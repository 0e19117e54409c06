"""The epoch loop shared by every trained model: progress, validation, early stopping,
a checkpoint after each epoch, and resume from the last checkpoint.

The checkpoint is one dict ``{model, optimizer, epoch, best_metric, best_epoch, best_model,
curves, config}``, written as safetensors plus JSON, never a pickle. A run killed mid-training and started again with the
same config continues after its last finished epoch; a checkpoint of another config is ignored.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llmrec_core.io import tensorfile
from llmrec_core.progress import progress as with_progress

log = logging.getLogger(__name__)


@dataclass
class LoopResult:
    epochs_run: int
    best_epoch: int
    best_metric: float
    curves: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0


class _Step(torch.nn.Module):
    """The training step as the forward of a module that owns ``model``: DistributedDataParallel
    averages gradients only for a backward of its own forward, and ``step`` calls the model's
    submodules directly."""

    def __init__(self, model: torch.nn.Module, step: Callable[[object], torch.Tensor]):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, batch) -> torch.Tensor:
        return self.step(batch)


def _trainer(model: torch.nn.Module, step: Callable[[object], torch.Tensor]) -> Callable[[object], torch.Tensor]:
    """``step`` itself in one process; under torchrun, ``step`` through DistributedDataParallel,
    which broadcasts the first process's weights and averages gradients in buckets during the
    backward. A step need not use every parameter (no targets in a batch, no labelled pairs):
    ``find_unused_parameters`` lets such a backward finish, and a parameter no process used keeps
    no gradient, as in one process."""
    if not _distributed():
        return step
    return torch.nn.parallel.DistributedDataParallel(_Step(model, step), find_unused_parameters=True)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _rank() -> int:
    return torch.distributed.get_rank() if _distributed() else 0


def _agreed(value: float) -> float:
    """The first process's validation metric, so every process stops at the same epoch."""
    if not _distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    torch.distributed.broadcast(t, src=0)
    return float(t.item())


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint as ``path.safetensors`` plus ``path.json``, never a pickle; a
    concurrent reader sees a whole pair or refuses a mixed one."""
    tensorfile.save(state, path)


def load_checkpoint(path: Path | None, config: dict) -> dict | None:
    if path is None or not tensorfile.exists(path):
        return None
    try:
        state = tensorfile.load(path)
    except tensorfile.UnsafeFileError as err:
        log.warning("ignoring checkpoint %s: %s", path, err)
        return None
    if state.get("config") != config:
        log.warning("ignoring checkpoint %s: it was written for another config or other data", path)
        return None
    return state


def run_epochs(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], Iterable],
    step: Callable[[object], torch.Tensor],
    *,
    epochs: int,
    config: dict,
    validate: Callable[[], float] | None = None,
    patience: int = 3,
    min_epochs: int = 1,
    checkpoint: Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    name: str = "train",
    seed: int = 0,
) -> LoopResult:
    """Train for up to ``epochs``; with ``validate``, stop after ``patience`` epochs without a
    better validation metric (never before ``min_epochs`` epochs) and leave the best epoch's
    weights in ``model``."""
    start, best, best_epoch, best_state, curves = 1, -math.inf, 0, None, []
    state = load_checkpoint(checkpoint, config)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, best, best_epoch = state["epoch"] + 1, state["best_metric"], state["best_epoch"]
        best_state, curves = state["best_model"], state["curves"]
        log.info("%s: resuming after epoch %d from %s", name, state["epoch"], checkpoint)
    resumed_from = start - 1
    forward = _trainer(model, step)  # wraps the module without renaming its state_dict keys
    for epoch in range(start, epochs + 1):
        if validate is not None and epoch > min_epochs and epoch - best_epoch > patience and best_epoch > 0:
            break
        model.train()
        # Seeded per epoch, so a resumed run draws the same negatives and dropout masks as an
        # uninterrupted one.
        torch.manual_seed(seed * 100_003 + epoch + 7_919 * _rank())  # each process its own negatives
        total, n = 0.0, 0
        bar = with_progress(batches(epoch), f"{name} epoch {epoch}/{epochs}", enabled=progress)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            loss = forward(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            total, n = total + float(loss.detach()), n + 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        row = {"train_loss": total / max(n, 1)}
        if validate is not None:
            row["val_metric"] = _agreed(validate())
            if row["val_metric"] > best:
                best, best_epoch = row["val_metric"], epoch
                best_state = copy.deepcopy(model.state_dict())
        else:
            best_epoch = epoch
        curves.append(row)
        log.info("%s epoch %d: %s", name, epoch, {k: round(v, 5) for k, v in row.items()})
        if on_epoch is not None:
            on_epoch(epoch, row)
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "best_metric": best, "best_epoch": best_epoch, "best_model": best_state,
                "curves": curves, "config": config,
            })
    if best_state is not None:
        model.load_state_dict(best_state)
    return LoopResult(len(curves), best_epoch, best, curves, resumed_from)
