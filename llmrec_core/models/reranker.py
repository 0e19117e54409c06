"""The cross-encoder re-ranker: ``AutoModelForSequenceClassification`` with one output over
"[user's recent behaviour text] [SEP] [candidate item text]".

Its logit is a click log-odds; :func:`train_cross_encoder` fits it with BCE on positives and
hard negatives, :func:`cross_scores` scores pairs in batches.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import numpy as np
import torch
from torch.nn import functional as F

from llmrec_core.models import encoder as lm
from llmrec_core.progress import progress as with_progress

log = logging.getLogger(__name__)


def load_cross_encoder(encoder: str, state: dict | None = None):
    """(model, tokenizer) from the same offline source as the two-tower encoder."""
    from transformers import AutoModelForSequenceClassification, BertConfig
    from transformers import logging as hf_logging

    tok = lm.load_tokenizer(encoder)
    shape = lm._RANDOM.fullmatch(encoder)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the classification head is new by design; no warning
    try:
        if shape:
            base = lm.load_encoder(encoder)
            cfg = BertConfig(**{**base.config.to_dict(), "num_labels": 1})
            model = AutoModelForSequenceClassification.from_config(cfg)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(lm.resolve(encoder), num_labels=1, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    if state is not None:
        model.load_state_dict(state)
    return model, tok


def _batch(tok, left: list[str], right: list[str], max_tokens: int, device: torch.device):
    enc = tok(left, right, truncation="only_first", max_length=max_tokens, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def train_cross_encoder(model, tok, left: list[str], right: list[str], labels: np.ndarray, *, epochs: int, lr: float,
                        batch_size: int, max_tokens: int, device: torch.device, seed: int, progress: bool = False) -> list[float]:
    model.to(device).train()
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, **fused)
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        order = rng.permutation(len(labels))
        total, n = 0.0, 0
        for s in with_progress(range(0, len(order), batch_size), f"reranker epoch {epoch + 1}", enabled=progress):
            idx = order[s : s + batch_size]
            inputs = _batch(tok, [left[i] for i in idx], [right[i] for i in idx], max_tokens, device)
            with _autocast(device):
                logits = model(**inputs).logits.squeeze(-1).float()
            loss = F.binary_cross_entropy_with_logits(logits, torch.as_tensor(labels[idx], dtype=torch.float32, device=device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()), n + 1
        losses.append(total / max(n, 1))
        log.info("reranker epoch %d: loss %.4f over %d pairs", epoch + 1, losses[-1], len(labels))
    return losses


@torch.no_grad()
def cross_scores(model, tok, left: list[str], right: list[str], *, batch_size: int, max_tokens: int, device: torch.device) -> np.ndarray:
    model.to(device).eval()
    out = np.zeros(len(left), np.float32)
    for s in range(0, len(left), batch_size):
        inputs = _batch(tok, left[s : s + batch_size], right[s : s + batch_size], max_tokens, device)
        with _autocast(device):
            out[s : s + batch_size] = model(**inputs).logits.squeeze(-1).float().cpu().numpy()
    return out
