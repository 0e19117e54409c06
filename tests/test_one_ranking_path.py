"""One ranking path: for every model and baseline, the evaluation harness's top-K and the rows
``llmrec score`` publishes are the same items in the same order, re-ranked and not.

Each recommender is fitted on the toy snapshot, exported into a bundle, registered in a real
MLflow store, and served by the scoring job from the registry into a real DuckDB file. The
harness ranks the same users with the in-memory model through ``evaluation.top_k_lists``.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from jobs import score
from llmrec_core.data.protocols import DAY, EvalSplit
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.evaluation import top_k_lists
from llmrec_core.io import tracking
from llmrec_core.recommenders import zoo
from llmrec_core.registry import bundle
from llmrec_core.registry.pyfunc import input_example
from llmrec_core.settings import load_settings
from tests.toy import isolated_home, make_tiny, write_toy_lake

K = 6
PROFILE_ONLY = 3  # users known by profile alone: the text models score them, the baselines leave them to the fallback


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark):
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("ranking") / "home"
    home.mkdir()
    isolated_home(mp, home)
    last = write_toy_lake(home, profile_only=PROFILE_ONLY)
    settings = make_tiny(load_settings())
    settings.scoring.k, settings.scoring.similar_k, settings.scoring.audience_k = K, 3, 3
    settings.scoring.user_block = 16  # several blocks even on the toy
    settings.warehouse.row_count_tolerance = 1.0  # every model publishes the same day again
    snap = load_snapshot(settings, last)
    tracking.setup(settings)
    fitted = {}
    for rec in zoo.sequence_models(settings) + zoo.baselines(settings):
        fitted[rec.name] = rec.fit(snap, snap.events)
    # The language model with new items ranked with the users' taste, fitted without the last three
    # days so that the items first seen in them are known by text only.
    tasting = settings.model_copy(deep=True)
    tasting.model.cold_taste_weight = 2.0
    fitted["llmrec_cold_taste"] = zoo.sequence_models(tasting, ablations=False)[0].fit(
        snap, snap.events.mask(snap.events.ts < snap.end_ts - 3 * DAY))
    rr = zoo.reranker(settings, fitted[zoo.MODEL])
    rr.fit(snap, snap.events)
    yield home, last, settings, snap, fitted, rr
    mp.undo()


def register(settings, snap, rec, reranker=None) -> str:
    with tracking.run(f"register {rec.name}"):
        return bundle.register(settings, bundle.Bundle(rec.export(), rec.export(), reranker, {"ds": str(snap.ds)}),
                               # Served by number, as a promoted version (the gate is tested elsewhere).
                               input_example(list(snap.item_ids[:5])), {"model": rec.name, "promotion": "promoted: by the test"})


def published(home) -> tuple[dict[str, list[str]], dict[str, list[float]], set[str]]:
    """The served lists (item IDs, best first) of every user, the scores of those the model
    ranked, and the users served the popularity fallback."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT user_id, item_id, score, source FROM user_recommendations_latest ORDER BY user_id, rank").fetchall()
    items: dict[str, list[str]] = {}
    scores: dict[str, list[float]] = {}
    for user, item, score_, source in rows:
        items.setdefault(user, []).append(item)
        if source != "popularity_fallback":  # the fallback's scores are its shares, not the model's
            scores.setdefault(user, []).append(score_)
    return items, scores, {user for user, *_, source in rows if source == "popularity_fallback"}


def harness(rec, snap) -> dict[str, list[str]]:
    """The harness's lists for every user with history or profile, as of the end of D (the
    popularity fallback for those the model can rank nothing for)."""
    split = EvalSplit("temporal", snap.events, snap.events, scored_users(snap), np.full(len(scored_users(snap)), snap.end_ts, np.int64), [])
    lists = top_k_lists(rec, split, snap, K, allowed=snap.item_available)
    return {snap.user_ids[u]: [snap.item_ids[i] for i in lst] for u, lst in zip(split.users, lists, strict=True)}


def scored_users(snap) -> np.ndarray:
    has_profile = np.array([bool(t) for t in snap.profile_texts])
    return np.flatnonzero((np.bincount(snap.events.user, minlength=snap.n_users) > 0) | has_profile).astype(np.int32)


def harness_scores(rec, snap, fallback: set[str]) -> dict[str, list[float]]:
    from llmrec_core.recommenders.base import History

    users = np.array([u for u in scored_users(snap) if snap.user_ids[u] not in fallback], np.int32)
    scores, items = rec.recommend(users, History.of(snap.events, snap.n_users), np.full(len(users), snap.end_ts), K,
                                  allowed=snap.item_available)
    return {snap.user_ids[u]: s[i >= 0].tolist() for u, s, i in zip(users, scores, items, strict=True)}


def assert_same(served: dict[str, list[float]], measured: dict[str, list[float]]) -> None:
    assert served.keys() == measured.keys()
    for user in served:
        assert np.allclose(served[user], measured[user], atol=1e-4), user


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llmrec", "llmrec_cold_taste", "seq_id_only", "seq_text_only", "popularity", "item_knn", "ease",
                                  "als", "content"])
def test_the_served_table_is_the_measured_ranking(lake, name):
    home, last, settings, snap, fitted, _ = lake
    rec = fitted[name]
    settings.scoring.rerank = "off"
    version = register(settings, snap, rec)
    out = score.run(settings, last, model_version=version)
    assert not out["reranked"]
    (served, served_scores, fallback), measured = published(home), harness(rec, snap)
    assert served.keys() == measured.keys() and len(served) > 40
    assert served == measured
    assert_same(served_scores, harness_scores(rec, snap, fallback))
    # Users known by profile alone: the sequence models rank for them (seq_id_only from an empty
    # history), and so does popularity; the baselines that rank from behaviours alone serve (and
    # are measured on) the popularity fallback.
    profile_only = {f"p{j}" for j in range(PROFILE_ONLY)}
    assert profile_only <= served.keys()
    assert profile_only & fallback == (profile_only if name in ("item_knn", "ease", "als", "content") else set())
    if name == "llmrec_cold_taste":  # the blend was served: items the model knows by text only are listed
        new = {snap.item_ids[i] for i in np.flatnonzero(~rec.known_.cpu().numpy())}
        assert any(item in new for lst in served.values() for item in lst)


@pytest.mark.slow
def test_the_served_re_ranked_table_is_the_measured_re_ranking(lake):
    home, last, settings, snap, fitted, rr = lake
    settings.scoring.rerank = "on"
    version = register(settings, snap, fitted[zoo.MODEL], reranker=rr.head())
    out = score.run(settings, last, model_version=version)
    assert out["reranked"]
    (served, served_scores, fallback), measured = published(home), harness(rr, snap)
    assert served == measured
    assert_same(served_scores, harness_scores(rr, snap, fallback))
    # The cross-encoder was applied: the served scores are not the base model's.
    base = harness_scores(fitted[zoo.MODEL], snap, fallback)
    assert any(not np.allclose(served_scores[u], base[u], atol=1e-3) for u in served)
