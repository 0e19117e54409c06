"""A trained LLM recommender as a plain dict, and back onto any day's catalogue.

``export_llm`` keeps what scoring needs: the model config and weights, the item IDs it knows,
each item's text and text vector, and (for ``lora``/``full``) the fine-tuned encoder weights.
``restore_llm`` puts it onto a snapshot: items are matched by ID, so a catalogue that grew
since training keeps working; a new item, or one whose text changed, is encoded from its
text and has no ID part (cold start), and profiles are encoded fresh.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch

from llmrec_core.data.snapshot import Snapshot
from llmrec_core.model_settings import ModelSettings, TrainSettings
from llmrec_core.models import encoder as lm
from llmrec_core.models.two_tower import TwoTower, TwoTowerConfig
from llmrec_core.recommenders.llm import LlmRecommender

log = logging.getLogger(__name__)


def export_llm(rec: LlmRecommender) -> dict:
    ms = rec.model_settings
    rec.all_item_vectors()  # refreshes the text vectors from a fine-tuned encoder
    text = rec.item_text_.cpu() if ms.use_text else None
    encoder_state = getattr(rec, "random_encoder_state_", None)
    base_state = encoder_state
    if rec.encoder_ is not None:
        enc = copy.deepcopy(rec.encoder_)  # merging LoRA must not change the live model
        enc = enc.merge_and_unload() if hasattr(enc, "merge_and_unload") else enc
        encoder_state = {k: v.cpu() for k, v in enc.state_dict().items()}
    counts = np.bincount(rec.train_.kind, minlength=rec.snap_.kinds.size)
    return {
        "name": rec.name,
        "model_settings": ms.model_dump(),
        "train_settings": rec.train_settings.model_dump(),
        "cfg": rec.model_.cfg.to_dict(),
        "state": {k: v.cpu() for k, v in rec.model_.state_dict().items()},
        "item_ids": list(rec.snap_.item_ids),
        "item_texts": list(rec.snap_.item_texts),
        "item_titles": list(rec.snap_.item_titles),
        "item_text_vectors": text,
        # The centring the model was trained with is part of the model.
        "text_mean": rec.text_mean_.cpu() if ms.use_text else None,
        "profile_mean": torch.as_tensor(rec.profile_mean_).cpu() if ms.use_text else None,
        "known": rec.known_.cpu(),
        "kinds": rec.snap_.kinds,
        "default_kind": int(np.argmax(counts[1:]) + 1) if counts[1:].any() else 1,
        "encoder_state": encoder_state,
        "base_encoder_state": base_state,
        "encoder_tuned": rec.encoder_ is not None,
        "ds": str(rec.snap_.ds),
    }


def _encoder(state: dict, device: torch.device, tuned: bool = True):
    enc = lm.load_encoder(state["model_settings"]["encoder"])
    weights = state["encoder_state"] if tuned else state["base_encoder_state"]
    if weights is not None:
        enc.load_state_dict(weights)
    return enc.to(device).eval()


def restore_llm(state: dict, snap: Snapshot, device: str = "auto") -> LlmRecommender:
    ms, ts = ModelSettings(**state["model_settings"]), TrainSettings(**{**state["train_settings"], "device": device})
    rec = LlmRecommender(ms, ts, name=state["name"])
    old = {item: i for i, item in enumerate(state["item_ids"])}
    rows = np.array([old.get(item, -1) for item in snap.item_ids], np.int64)
    same_text = np.array([r >= 0 and state["item_texts"][r] == t for r, t in zip(rows, snap.item_texts, strict=True)], bool)
    cfg = TwoTowerConfig(**{**state["cfg"], "n_items": snap.n_items})
    model = TwoTower(cfg)
    weights = dict(state["state"])
    if cfg.use_ids:
        table = torch.zeros(snap.n_items, cfg.dim)
        hit = rows >= 0
        table[torch.from_numpy(np.flatnonzero(hit))] = weights["items.id_emb.weight"][torch.from_numpy(rows[hit])]
        weights["items.id_emb.weight"] = table
    model.load_state_dict(weights)
    rec.model_ = model.to(rec.device).eval()
    known = np.zeros(snap.n_items, bool)
    known[rows >= 0] = state["known"].numpy()[rows[rows >= 0]]
    # A changed text is a changed item as far as the text tower knows; its ID part stays.
    rec.known_ = torch.from_numpy(known).to(rec.device)
    rec.snap_, rec.encoder_, rec._cache = snap, None, None
    rec.has_profile_ = torch.tensor([bool(t) for t in snap.profile_texts], dtype=torch.bool, device=rec.device)
    rec.profile_text_, rec.item_text_ = None, None
    if ms.use_text:
        enc, tok = _encoder(state, rec.device), lm.load_tokenizer(ms.encoder)
        text = torch.zeros(snap.n_items, cfg.text_dim)
        text[torch.from_numpy(np.flatnonzero(same_text))] = state["item_text_vectors"][torch.from_numpy(rows[same_text])]
        fresh = np.flatnonzero(~same_text)
        if len(fresh):
            vecs = lm.encode_all(enc, lm.TextTokens(tok, [snap.item_texts[i] for i in fresh], ms.max_text_tokens), ts.text_batch_size, rec.device)
            text[torch.from_numpy(fresh)] = vecs
            log.info("encoded %d new or changed item texts", len(fresh))
        rec.item_text_ = text.to(rec.device)
        rec.text_mean_ = state["text_mean"].to(rec.device)
        rec.profile_mean_ = state["profile_mean"].to(rec.device)
        # Profiles were always encoded by the frozen base model.
        if state["encoder_tuned"]:
            enc = _encoder(state, rec.device, tuned=False)
        rec.profile_text_ = lm.encode_all(enc, lm.TextTokens(tok, [t or "" for t in snap.profile_texts], ms.max_text_tokens), ts.text_batch_size, rec.device).to(rec.device)
    return rec
