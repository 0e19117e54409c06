"""Blocks of users through the engine: exclusions, fallbacks, sources, reasons, audience,
similar items and the cross-encoder re-rank, against plain recomputation.

The recommender here scores ``<u, i> * 2 - 1`` from fixed vectors, through the contract's
default ``recommend``/``audience`` (the path every baseline takes)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import torch

from llmrec_core.data.interactions import Interactions, KindVocab
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.io.serving_schema import COLD_TEXT, MODEL, POPULAR
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.recommenders.reranked import Reranked, history_texts
from llmrec_core.scoring.engine import Scoring, audience, merge_audience, recommend, similar_items
from llmrec_core.settings import FeedbackSettings, RerankSettings, TextSettings
from llmrec_core.text import TextRenderer

RNG = np.random.default_rng(3)
N_ITEMS, N_USERS, D = 12, 4, 4
VECTORS = RNG.normal(size=(N_ITEMS, D)).astype(np.float32)
USER_VECTORS = RNG.normal(size=(N_USERS, D)).astype(np.float32)
TITLES = [f"Film {i}" for i in range(N_ITEMS)]
TEXTS = [f"Film {i}. Genres: {'Drama' if i % 2 else 'Comedy'}." for i in range(N_ITEMS)]
# user: (kind, [(item, event type, label)], oldest first)
USERS = {
    0: (MODEL, [(0, "rate", 1), (1, "click", 1), (2, "rate", 0)]),
    1: (COLD_TEXT, []),
    2: (POPULAR, []),
    3: (MODEL, [(3, "purchase", 1)]),
}


class FixedVectors(Recommender):
    name = "fixed"

    def fit(self, snapshot, train):
        return self

    def score(self, users, history, asof):
        return USER_VECTORS[users] @ VECTORS.T * 2.0 - 1.0

    def item_vectors(self):
        return VECTORS


def history() -> History:
    rows = [(u, i, t, lab, 100 + j) for u, (_, evs) in USERS.items() for j, (i, t, lab) in enumerate(evs)]
    user, item, types, label, ts = (np.array(c) for c in zip(*rows, strict=True))
    events = Interactions(user.astype(np.int32), item.astype(np.int32), np.ones(len(rows), np.int16), label.astype(np.int8),
                          ts.astype(np.int64), np.full(len(rows), np.nan, np.float32), types.astype(object)).sorted()
    return History.of(events, N_USERS)


def scoring(k=3, rec=None) -> Scoring:
    allowed = np.ones(N_ITEMS, bool)
    allowed[5] = False  # unavailable
    text_only = np.zeros(N_ITEMS, bool)
    text_only[7] = True  # no interactions yet: scored from its text
    popular = np.array([i for i in [3, 0, 9, 1, 2, 4, 6, 7, 8, 10, 11] if allowed[i]])
    return Scoring(rec=rec or FixedVectors(), history=history(), asof=np.full(N_USERS, 1000), kind=np.array([USERS[u][0] for u in range(N_USERS)], np.int8),
                   vectors=VECTORS, allowed=allowed, text_only=text_only, titles=TITLES, popular=popular,
                   popular_scores=np.linspace(0.3, 0.0, len(popular)), text=TextSettings(), k=k, audience_k=2)


def seen(user: int) -> set[int]:
    return {i for i, _, _ in USERS[user][1]}


def test_scored_users_get_the_exact_top_k_without_seen_or_unavailable_items():
    out = recommend(np.arange(N_USERS), scoring()).to_pydict()
    for user, (kind, _) in USERS.items():
        if kind == POPULAR:
            continue
        logits = USER_VECTORS[user] @ VECTORS.T * 2.0 - 1.0
        ranked = [i for i in np.argsort(-logits, kind="stable") if i not in seen(user) and i != 5][:3]
        got = [(it, sc) for u, it, sc in zip(out["user"], out["item"], out["score"], strict=True) if u == user]
        assert [g[0] for g in got] == ranked
        assert np.allclose([g[1] for g in got], logits[ranked], atol=1e-5)
    assert set(out["rank"]) == {1, 2, 3} and len(out["user"]) == 12


def test_sources_and_reasons_say_how_each_row_was_made():
    sc = scoring(k=11)
    out = recommend(np.arange(N_USERS), sc).to_pydict()
    rows = list(zip(out["user"], out["item"], out["source"], out["reason"], strict=True))
    popular = [(i, s, r) for u, i, s, r in rows if u == 2]
    assert [i for i, _, _ in popular] == list(sc.popular)  # the fallback, in popularity order
    assert {(s, r) for _, s, r in popular} == {("popularity_fallback", "Popular this week")}
    assert {(s, r) for u, _, s, r in rows if u == 1} == {("cold_text", "Picked for your profile")}
    for u, i, s, _ in rows:
        if u in (0, 3):
            assert s == ("cold_text" if i == 7 else "model")
    # User 0's reasons come from behaviours 0 (rated highly) and 1 (clicked), never the low rating of 2.
    assert {r for u, *_, r in rows if u == 0} <= {"Because you rated Film 0 highly", "Because you clicked Film 1"}
    assert {r for u, *_, r in rows if u == 3} == {"Because you bought Film 3"}


class WithoutProfiles(FixedVectors):
    """A model that reads no profile (the content baseline, ALS): a user without history gets -inf."""

    def score(self, users, history, asof):
        out = super().score(users, history, asof)
        out[history.length(np.asarray(users)) == 0] = -np.inf
        return out


def test_a_user_the_model_cannot_rank_anything_for_gets_the_fallback():
    sc = scoring(k=4, rec=WithoutProfiles())
    out = recommend(np.arange(N_USERS), sc).to_pydict()
    rows = list(zip(out["user"], out["item"], out["source"], out["reason"], strict=True))
    # User 1 is known only by profile, which this model cannot read: the fallback, as for user 2.
    for user in (1, 2):
        assert [i for u, i, _, _ in rows if u == user] == list(sc.popular[:4])
        assert {(s, r) for u, _, s, r in rows if u == user} == {("popularity_fallback", "Popular this week")}
    assert {s for u, _, s, _ in rows if u in (0, 3)} <= {"model", "cold_text"}
    assert sc.kind.tolist() == [USERS[u][0] for u in range(N_USERS)]  # the inputs are left as they were


def test_without_item_vectors_the_newest_usable_behaviour_is_the_reason():
    sc = scoring(k=4)
    sc.vectors = None
    out = recommend(np.array([0]), sc).to_pydict()
    assert set(out["reason"]) == {"Because you clicked Film 1"}


def test_audience_excludes_users_who_engaged_or_have_nothing_and_merges_across_blocks():
    sc = scoring()
    whole = merge_audience(audience(np.arange(N_USERS), sc), 2)
    parts = pa.concat_tables([audience(np.arange(s, s + 2), sc) for s in (0, 2)])
    merged = merge_audience(parts, 2)
    # The same rows; scores agree to float32 rounding (matrix products of other shapes).
    assert merged.drop(["score"]).equals(whole.drop(["score"]))
    assert np.allclose(merged["score"].to_numpy(), whole["score"].to_numpy(), atol=1e-5)
    got = whole.to_pydict()
    for item in range(N_ITEMS):
        cand = [(float(USER_VECTORS[u] @ VECTORS[item] * 2.0 - 1.0), u) for u, (kind, _) in USERS.items()
                if kind != POPULAR and item not in seen(u)]
        best = [u for _, u in sorted(cand, key=lambda c: (-c[0], c[1]))[:2]]
        assert [u for i, u in zip(got["item"], got["user"], strict=True) if i == item] == best


def test_similar_items_exclude_the_item_itself_and_unavailable_items():
    out = similar_items(scoring(), 3).to_pydict()
    unit = VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True)
    for item in range(N_ITEMS):
        cos = unit @ unit[item]
        expected = [j for j in np.argsort(-cos, kind="stable") if j not in (item, 5)][:3]
        got = [j for i, j in zip(out["item"], out["rec_item"], strict=True) if i == item]
        assert got == expected


def test_similar_items_without_vectors_are_the_popular_ones():
    sc = scoring()
    sc.vectors = None
    out = similar_items(sc, 3).to_pydict()
    for item in range(N_ITEMS):
        got = [j for i, j in zip(out["item"], out["rec_item"], strict=True) if i == item]
        assert got == [j for j in sc.popular if j != item][:3]


def test_rerank_reorders_the_top_n_by_base_score_plus_cross_encoder():
    from llmrec_core.models.reranker import cross_scores, load_cross_encoder

    torch.manual_seed(0)
    model, _ = load_cross_encoder("random:32x2")
    settings = RerankSettings(top_n=4, batch_size=4, max_tokens=32)
    hist = history()
    snap = Snapshot(dt.date(2024, 1, 1), np.array([str(i) for i in range(N_ITEMS)], dtype=object), TITLES, TEXTS,
                    np.ones(N_ITEMS, bool), np.array([str(u) for u in range(N_USERS)], dtype=object), [""] * N_USERS,
                    hist.events, KindVocab.from_feedback(FeedbackSettings()))
    reranked = Reranked.restore({"weights": model.state_dict(), "encoder": "random:32x2", "settings": settings.model_dump()},
                                FixedVectors(), snap, TextSettings(), "cpu")
    base = recommend(np.array([0]), scoring(k=4)).to_pydict()
    out = recommend(np.array([0]), scoring(k=3, rec=reranked)).to_pydict()
    m, tok = load_cross_encoder("random:32x2", model.state_dict())
    left = history_texts(np.array([0]), hist, snap, TextRenderer(TextSettings()))[0]
    ce = cross_scores(m, tok, [left] * 4, [TEXTS[i] for i in base["item"]], batch_size=4, max_tokens=32, device=torch.device("cpu"))
    combined = np.array(base["score"]) + ce
    order = np.lexsort((base["item"], -combined))[:3]
    assert out["item"] == [base["item"][j] for j in order]
    assert np.allclose(out["score"], combined[order], atol=1e-4)


def test_the_spark_engine_returns_the_local_engines_tables(spark):
    """``mapInArrow`` with one user per partition (one of them with no audience rows at all):
    the same schemas and rows as one process walking the users in one block."""
    from llmrec_core.scoring.runners import run_local, run_spark

    local_recs, local_aud = run_local(scoring())
    recs, aud = run_spark(spark, scoring(), users_per_partition=1)
    assert recs.schema == local_recs.schema
    # Spark's ``rank`` (a window's row number) is declared not null; names and types are the same.
    assert [(f.name, f.type) for f in aud.schema] == [(f.name, f.type) for f in local_aud.schema]
    # Scores agree to float32 rounding (matrix products of other shapes).
    assert recs.drop(["score"]).equals(local_recs.drop(["score"]))
    assert np.allclose(recs["score"].to_numpy(), local_recs["score"].to_numpy(), atol=1e-5)
    assert aud.drop(["score"]).cast(local_aud.drop(["score"]).schema).equals(local_aud.drop(["score"]))
    assert np.allclose(aud["score"].to_numpy(), local_aud["score"].to_numpy(), atol=1e-5)
