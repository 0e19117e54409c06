"""Training losses of the two-tower model: sampled softmax with logQ correction, and BCE."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def sampled_softmax(logits: torch.Tensor, target_col: torch.Tensor, log_q: torch.Tensor,
                    accidental: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over a shared candidate set (in-batch positives + sampled negatives).

    logits [T, C] = <u, v_c> / tau; ``log_q`` [C] the log sampling probability of each
    candidate, subtracted so popular items are not over-penalised as negatives (logQ
    correction); ``accidental`` [T, C] marks candidates that are also positives of the row's
    user and so must not count as negatives.
    """
    corrected = logits - log_q.unsqueeze(0)
    if accidental is not None:
        own = F.one_hot(target_col, corrected.shape[1]).bool()
        corrected = corrected.masked_fill(accidental & ~own, float("-inf"))
    return F.cross_entropy(corrected, target_col)


def click_bce(click_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of p(click) against 0/1 labels (explicit negatives included)."""
    return F.binary_cross_entropy_with_logits(click_logits, labels.float())
