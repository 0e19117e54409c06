"""Every recommender the gate can promote recommends through the registered pyfunc exactly as
the nightly table does for the same history: same items in the same order, same scores and
reasons, with seen, unavailable and filtered-out items excluded. ALS, which cannot score a
user it was not trained on, gives the nightly popularity fallback."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from llmrec_core.io import tracking
from llmrec_core.io.serving_schema import POPULAR
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.base import History
from llmrec_core.scoring import engine
from llmrec_core.scoring.inputs import scoring_inputs
from llmrec_core.settings import FilterSettings
from tests.registry.versions import register, toy_world

K = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory, spark):
    mp, settings, snap = toy_world(tmp_path_factory, "kinds")
    settings.scoring.k = K
    settings.scoring.filters = FilterSettings(exclude_categories=["Horror"])  # the "Haunted" quarter of the toy catalogue
    fitted = {rec.name: rec.fit(snap, snap.events) for rec in zoo.baselines(settings)}
    yield settings, snap, fitted
    mp.undo()


def requests(snap, users: np.ndarray) -> pd.DataFrame:
    """The users' behaviours as request rows."""
    history, ev = History.of(snap.events, snap.n_users), snap.events
    rows = [history.rows(int(u)) for u in users]
    return pd.DataFrame({"history": [list(snap.item_ids[ev.item[r]]) for r in rows],
                         "event_types": [list(ev.event_type[r]) for r in rows], "values": [ev.value[r].astype(float).tolist() for r in rows]})


@pytest.mark.parametrize("name", ["popularity", "item_knn", "ease", "als", "content"])
def test_the_pyfunc_recommends_what_the_nightly_table_would(world, name):
    settings, snap, fitted = world
    rec = fitted[name]
    model = mlflow.pyfunc.load_model(tracking.model_uri("llmrec", version=register(settings, snap, rec)))
    users = np.flatnonzero(np.bincount(snap.events.user, minlength=snap.n_users) > 0)[:12]
    got = model.predict(requests(snap, users), params={"k": K})

    allowed = snap.item_available & ~np.array([t.startswith("Haunted") for t in snap.item_titles])
    sc = scoring_inputs(settings, snap, rec, allowed)
    if name == "als":  # a request's user is never one ALS was trained on: the fallback, excluding what was seen
        sc.kind[:] = POPULAR
    nightly = engine.recommend(users, sc).to_pandas()
    assert len(got) == len(users) * K and not got["title"].str.startswith("Haunted").any()
    assert got["request"].tolist() == np.searchsorted(users, nightly["user"]).tolist()
    assert got["rank"].tolist() == nightly["rank"].tolist()
    assert got["item_id"].tolist() == snap.item_ids[nightly["item"]].tolist()
    assert np.allclose(got["score"], nightly["score"], atol=1e-5)
    assert got["reason"].tolist() == nightly["reason"].tolist() and got["source"].tolist() == nightly["source"].tolist()
    assert set(got["source"]) == ({"popularity_fallback"} if name == "als" else {"model"})
    if name == "item_knn":  # reasons point at the history's own items
        assert got["reason"].str.startswith("Because").all()
    if name == "popularity":  # the same list for everyone: no behaviour of the user's is its reason
        assert (got["reason"] == settings.text.reason_popular_list).all()


def test_a_user_with_nothing_to_score_from_gets_the_fallback_and_a_pair_still_scores(world):
    settings, snap, fitted = world
    model = mlflow.pyfunc.load_model(tracking.model_uri("llmrec", version=register(settings, snap, fitted["ease"])))
    got = model.predict(pd.DataFrame({"history": [[], ["no-such-item"]]}), params={"k": 3})
    assert got["request"].tolist() == [0, 0, 0, 1, 1, 1] and set(got["source"]) == {"popularity_fallback"}
    assert got.groupby("request")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    assert (got["reason"] == settings.text.reason_popular).all()
    ids = list(snap.item_ids)
    pairs = model.predict(pd.DataFrame({"history": [ids[:3], ids[:3]], "item_id": [ids[4], "no-such-item"]}))
    assert list(pairs.columns) == ["score"] and np.isfinite(pairs["score"][0]) and np.isnan(pairs["score"][1])
