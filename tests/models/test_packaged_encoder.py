"""Smoke test: the real packaged all-MiniLM-L6-v2 loads offline and encodes meaningfully."""

from __future__ import annotations

import torch

from llmrec_core.models import encoder as lm
from llmrec_core.models.reranker import cross_scores, load_cross_encoder


def test_packaged_minilm_loads_offline_and_encodes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any download attempt would fail
    assert (lm.packaged_model_dir() / "model.safetensors").is_file()
    model, tok = lm.load_encoder("packaged"), lm.load_tokenizer("packaged")
    assert model.config.hidden_size == 384
    texts = [
        "Toy Story (1995). Genres: Animation, Children's, Comedy.",
        "Aladdin (1992). Genres: Animation, Children's, Musical.",
        "Schindler's List (1993). Genres: Drama, War.",
    ]
    vecs = lm.encode_all(model, lm.TextTokens(tok, texts, 64), 8, torch.device("cpu"))
    assert torch.allclose(vecs.norm(dim=-1), torch.ones(3), atol=1e-5)
    sim = vecs @ vecs.T
    assert sim[0, 1] > sim[0, 2] + 0.1  # two animated children's films are closer than a war drama
    ce, ce_tok = load_cross_encoder("packaged")
    scores = cross_scores(ce, ce_tok, ["rated 5: Toy Story (1995)"] * 2, texts[1:], batch_size=2, max_tokens=64,
                          device=torch.device("cpu"))
    assert scores.shape == (2,) and torch.isfinite(torch.from_numpy(scores)).all()
