"""One block of users through the engine: exclusions, fallbacks, sources, reasons, audience,
similar items and the cross-encoder re-rank, against plain recomputation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from llmrec_core.model_settings import RerankSettings, TextSettings
from llmrec_core.scoring.engine import USER_INPUTS, ItemSide, Reranker, UserBlock, audience, merge_audience, recommend, similar_items
from llmrec_core.scoring.tables import COLD_TEXT, MODEL, POPULAR

RNG = np.random.default_rng(3)
N_ITEMS, D = 12, 4
VECTORS = RNG.normal(size=(N_ITEMS, D)).astype(np.float32)
TITLES = [f"Film {i}" for i in range(N_ITEMS)]


def side(k=3, **kw) -> ItemSide:
    allowed = np.ones(N_ITEMS, bool)
    allowed[5] = False  # unavailable
    text_only = np.zeros(N_ITEMS, bool)
    text_only[7] = True  # no interactions yet: scored from its text
    popular = np.array([i for i in [3, 0, 9, 1, 2, 4, 6, 7, 8, 10, 11] if allowed[i]])
    return ItemSide(vectors=VECTORS, scale=2.0, bias=-1.0, allowed=allowed, text_only=text_only, titles=TITLES,
                    popular=popular, popular_scores=np.linspace(0.3, 0.0, len(popular)), text=TextSettings(), k=k,
                    audience_k=2, **kw)


def users(rows) -> pa.Table:
    """rows: (user, kind, seen, hist_items, hist_types, hist_labels)."""
    vec = RNG.normal(size=(len(rows), D)).astype(np.float32)
    return pa.table({
        "user": [r[0] for r in rows], "vector": [v.tolist() for v in vec], "kind": [r[1] for r in rows],
        "seen": [r[2] for r in rows], "hist_items": [r[3] for r in rows], "hist_types": [r[4] for r in rows],
        "hist_labels": [r[5] for r in rows], "context": ["rated 5: Film 0"] * len(rows),
    }, schema=USER_INPUTS)


ROWS = [
    (10, MODEL, [0, 1, 2], [0, 1, 2], ["rate", "click", "rate"], [1, 1, 0]),
    (11, COLD_TEXT, [], [], [], []),
    (12, POPULAR, [], [], [], []),
    (13, MODEL, [3], [3], ["purchase"], [1]),
]


def test_model_users_get_the_exact_top_k_without_seen_or_unavailable_items():
    table = users(ROWS)
    block = UserBlock.from_arrow(table)
    out = recommend(block, side()).to_pydict()
    for r, (user, kind, seen, *_rest) in enumerate(ROWS):
        if kind == POPULAR:
            continue
        logits = block.vectors[r] @ VECTORS.T * 2.0 - 1.0
        ranked = [i for i in np.argsort(-logits, kind="stable") if i not in seen and i != 5][:3]
        got = [(it, sc) for u, it, sc in zip(out["user"], out["item"], out["score"], strict=True) if u == user]
        assert [g[0] for g in got] == ranked
        assert np.allclose([g[1] for g in got], logits[ranked], atol=1e-5)
    assert set(out["rank"]) == {1, 2, 3} and len(out["user"]) == 12


def test_sources_and_reasons_say_how_each_row_was_made():
    out = recommend(UserBlock.from_arrow(users(ROWS)), side(k=11)).to_pydict()
    rows = list(zip(out["user"], out["item"], out["source"], out["reason"], strict=True))
    popular = [(i, s, r) for u, i, s, r in rows if u == 12]
    assert [i for i, _, _ in popular] == list(side().popular)  # the fallback, in popularity order
    assert {(s, r) for _, s, r in popular} == {("popularity_fallback", "Popular this week")}
    assert {(s, r) for u, _, s, r in rows if u == 11} == {("cold_text", "Picked for your profile")}
    for u, i, s, _ in rows:
        if u in (10, 13):
            assert s == ("cold_text" if i == 7 else "model")
    # User 10's reasons come from behaviours 0 (rated highly) and 1 (clicked), never the low rating of 2.
    assert {r for u, *_, r in rows if u == 10} <= {"Because you rated Film 0 highly", "Because you clicked Film 1"}
    assert {r for u, *_, r in rows if u == 13} == {"Because you bought Film 3"}


def test_audience_excludes_users_who_engaged_or_have_nothing_and_merges_across_blocks():
    table = users(ROWS)
    whole = merge_audience(audience(UserBlock.from_arrow(table), side()), 2)
    parts = pa.concat_tables([audience(UserBlock.from_arrow(table.slice(s, 2)), side()) for s in (0, 2)])
    merged = merge_audience(parts, 2)
    # The same rows; scores agree to float32 rounding (matrix products of other shapes).
    assert merged.drop(["score"]).equals(whole.drop(["score"]))
    assert np.allclose(merged["score"].to_numpy(), whole["score"].to_numpy(), atol=1e-5)
    block = UserBlock.from_arrow(table)
    got = whole.to_pydict()
    for item in range(N_ITEMS):
        cand = [(float(block.vectors[r] @ VECTORS[item] * 2.0 - 1.0), u) for r, (u, kind, seen, *_r) in enumerate(ROWS)
                if kind != POPULAR and item not in seen]
        best = [u for _, u in sorted(cand, key=lambda c: (-c[0], c[1]))[:2]]
        assert [u for i, u in zip(got["item"], got["user"], strict=True) if i == item] == best


def test_similar_items_exclude_the_item_itself_and_unavailable_items():
    out = similar_items(side(), 3).to_pydict()
    unit = VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True)
    for item in range(N_ITEMS):
        cos = unit @ unit[item]
        expected = [j for j in np.argsort(-cos, kind="stable") if j not in (item, 5)][:3]
        got = [j for i, j in zip(out["item"], out["rec_item"], strict=True) if i == item]
        assert got == expected


def test_rerank_reorders_the_top_n_by_two_tower_plus_cross_encoder():
    from llmrec_core.models.reranker import cross_scores, load_cross_encoder

    torch.manual_seed(0)
    model, _ = load_cross_encoder("random:32x2")
    settings = RerankSettings(top_n=4, batch_size=4, max_tokens=32)
    texts = [f"Film {i}. Genres: {'Drama' if i % 2 else 'Comedy'}." for i in range(N_ITEMS)]
    reranked = side(k=3, reranker=Reranker(model.state_dict(), "random:32x2", settings, texts))
    block = UserBlock.from_arrow(users(ROWS[:1]))
    base = recommend(block, side(k=4)).to_pydict()
    out = recommend(block, reranked).to_pydict()
    m, tok = load_cross_encoder("random:32x2", model.state_dict())
    ce = cross_scores(m, tok, ["rated 5: Film 0"] * 4, [texts[i] for i in base["item"]], batch_size=4, max_tokens=32, device=torch.device("cpu"))
    combined = np.array(base["score"]) + ce
    order = np.lexsort((base["item"], -combined))[:3]
    assert out["item"] == [base["item"][j] for j in order]
    assert np.allclose(out["score"], combined[order], atol=1e-4)
