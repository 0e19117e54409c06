"""The content baseline: a user's taste in the frozen text vectors, new items scored from text."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from llmrec_core.data import protocols
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.evaluation import evaluate, evaluate_cold_items
from llmrec_core.recommenders import zoo
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.recommenders.content import ContentTaste
from llmrec_core.recommenders.portable import restore
from llmrec_core.settings.evaluation import EvaluationSettings
from llmrec_core.topk import unit_rows
from tests.core.test_evaluation import COLD_ROWS, C, snapshot
from tests.toy import interactions as make


class Given(ContentTaste):
    """The content baseline over hand-made text vectors instead of an encoder's."""

    def __init__(self, vectors, half_life: float = 0.0, negative_weight: float = 1.0):
        super().__init__("given", 16, 8, 0, half_life=half_life, negative_weight=negative_weight)
        self.given = np.asarray(vectors, np.float32)

    def _encode(self, texts):
        return self.given[: len(texts)]


def _scores(rec, n_users, events):
    users = np.arange(n_users, dtype=np.int64)
    return rec.score(users, History.of(events, n_users), np.zeros(n_users, np.int64))


def test_new_items_are_ordered_by_the_users_taste_in_unit_vectors_centred_on_the_catalogue():
    events = make(COLD_ROWS)
    split = protocols.cold_items(events, 4, 4, C, 5)
    snap = snapshot(4, 4, events)
    # User 0 (the one user with history and a new item to find) watched item 0 and wants item 2.
    like = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]  # item 2 reads like item 0
    unlike = [[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]  # item 3 does
    # Only unit vectors centred on the catalogue's mean put item 2 first here: raw vectors, unit
    # vectors not centred and centred vectors not made unit all put item 3 first.
    shared = [[-3.0, -4.0], [-4.0, 3.0], [5.0, 5.0], [2.0, 5.0]]
    v = np.array(shared)
    for wrong in (v, unit_rows(v), v - v.mean(axis=0)):
        assert int(np.argmax(wrong[2:] @ wrong[0])) == 1  # item 3, the miss

    def found(vectors):
        return evaluate_cold_items(Given(vectors).fit(snap, split.train), split, snap, [1])["cold_recall_1_warm_users"]

    assert (found(like), found(unlike), found(shared)) == (1.0, 0.0, 1.0)


def test_users_without_history_cannot_be_scored():
    events = make([(0, 0, 1, 1), (0, 1, 1, 2)])
    rec = Given(np.eye(3)).fit(snapshot(2, 3, events), events)
    s = _scores(rec, 2, events)
    assert np.isfinite(s[0]).all() and np.isneginf(s[1]).all()
    _, items = rec.recommend(np.array([1]), History.of(events, 2), np.zeros(1, np.int64), 3)
    assert (items == -1).all()


def test_the_half_life_weights_recent_behaviours_up():
    # The history, oldest first: items 0, 1 and 2 read alike, then item 3 reads otherwise. New
    # item 4 reads like the first three, new item 5 like the latest behaviour.
    vectors = [[1.0, 0.0, 0.0], [1.0, 0.1, 0.0], [1.0, 0.0, 0.1], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.1]]
    events = make([(0, 0, 1, 1), (0, 1, 1, 2), (0, 2, 1, 3), (0, 3, 1, 4)])
    snap = snapshot(1, 6, events)

    def prefers(half_life):
        s = _scores(Given(vectors, half_life).fit(snap, events), 1, events)[0]
        return "most of the history" if s[4] > s[5] else "the latest behaviour"

    assert prefers(0.0) == "most of the history"
    assert prefers(0.5) == "the latest behaviour"
    assert np.allclose(Given(vectors, 1.0).weights(np.ones(3)), np.array([0.25, 0.5, 1.0]) / 1.75)
    assert Given(vectors).weights(np.ones(4)).tolist() == [0.25] * 4
    with pytest.raises(ValueError, match="half_life"):
        ContentTaste("packaged", 16, 8, 0, half_life=-1)


def test_explicit_dislikes_weigh_as_told():
    # User 0 liked item 0 (label 1), rated item 1 with no label either way (-1) and disliked
    # item 2 (label 0). New item 3 reads like the dislike, new item 4 like the like.
    vectors = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.1, 1.0, 0.0], [1.0, 0.1, 0.0]]
    # User 1 has only a dislike; user 2 liked and disliked the same item.
    events = make([(0, 0, 1, 1), (0, 1, -1, 2), (0, 2, 0, 3), (1, 2, 0, 4), (2, 4, 1, 5), (2, 4, 0, 6)])
    snap = snapshot(3, 5, events)

    def fit(negative_weight):
        return Given(vectors, negative_weight=negative_weight).fit(snap, events)

    s = {w: _scores(fit(w), 3, events) for w in (1.0, 0.0, -1.0)}
    # Counted like any behaviour, the dislike pulls its look-alike up as far as the like does.
    assert s[1.0][0, 3] == pytest.approx(s[1.0][0, 4], abs=1e-6)
    assert s[0.0][0, 3] < s[0.0][0, 4] and s[-1.0][0, 3] < s[-1.0][0, 4]
    assert s[-1.0][0, 4] - s[-1.0][0, 3] > s[0.0][0, 4] - s[0.0][0, 3]  # subtracted, it pushes away
    labels = np.array([1, -1, 0])
    assert np.allclose(fit(1.0).weights(labels), [1 / 3] * 3)
    assert np.allclose(fit(0.0).weights(labels), [0.5, 0.5, 0.0])
    assert np.allclose(fit(-1.0).weights(labels), [1 / 3, 1 / 3, -1 / 3])
    # Counted, a lone dislike gives a taste; left out, none. Subtracted from the same like, the
    # taste cancels out: no taste either (the fallback serves), not a list of zero scores.
    assert np.isfinite(s[1.0][1]).all() and np.isneginf(s[0.0][1]).all()
    assert np.isfinite(s[0.0][2]).all() and np.isneginf(s[-1.0][2]).all()
    assert (fit(-0.5).export()["params"]["negative_weight"], fit(-0.5).params()["negative_weight"]) == (-0.5, -0.5)
    with pytest.raises(ValueError, match="negative_weight"):
        Given(vectors, negative_weight=2.0)
    with pytest.raises(ValueError, match="content_negative_weight_grid"):
        EvaluationSettings(content_negative_weight_grid=[0.0, -2.0])


@pytest.fixture
def toy(toy_home, tiny_settings):
    _, last = toy_home
    return tiny_settings, load_snapshot(tiny_settings, last)


def test_the_content_baseline_finds_topics_and_travels_onto_a_grown_catalogue(toy):
    """On the toy world, where an item's topic shows in its text and users keep to a topic, the
    taste alone ranks new items well; exported and restored onto a catalogue in another order
    with a new item and a changed text, known texts keep their vectors and the others are encoded
    now, centred on the centre it was fitted with."""
    settings, snap = toy
    cutoff = snap.end_ts - 3 * protocols.DAY
    cold = protocols.cold_items(snap.events, snap.n_users, snap.n_items, cutoff, 3)
    train = snap.events.mask(snap.events.ts < cutoff)
    make_content, grid = zoo.baseline_grids(settings)["content"]
    assert [(g["half_life"], g["negative_weight"]) for g in grid[:4]] == [(0.0, 1.0), (0.0, 0.0), (0.0, -1.0), (5.0, 1.0)]
    assert len(grid) == 12
    rec = make_content(**grid[0]).fit(snap, train)
    out = evaluate(rec, cold, snap, [2])
    assert out["cold_recall_2_warm_users"] > 1.5 * out["cold_random_recall_2"]
    assert np.isnan(out["cold_recall_2_cold_users"]) or out["cold_recall_2_cold_users"] == 0.0

    order = np.arange(snap.n_items)[::-1]
    texts = [snap.item_texts[i] for i in order]
    texts[0] = texts[0] + " Director's cut."
    grown = replace(snap, item_ids=np.r_[snap.item_ids[order], ["new"]].astype(object),
                    item_texts=[*texts, "Galaxy story new. Genres: Space."],
                    item_titles=[snap.item_titles[i] for i in order] + ["Galaxy story new"],
                    item_available=np.ones(snap.n_items + 1, bool))
    moved = restore(rec.export(), grown, "cpu")
    assert isinstance(moved, ContentTaste) and moved.params() == rec.params()
    # A baseline exported before dislikes had a weight counted them like any behaviour.
    old = rec.export()
    old["params"] = {"half_life": rec.half_life}
    assert restore(old, grown, "cpu").negative_weight == 1.0
    assert np.array_equal(moved.vectors_[1:-1], rec.vectors_[order[1:]])
    again = unit_rows(rec._encode([texts[0], "Galaxy story new. Genres: Space."])) - rec.centre_
    assert np.allclose(moved.vectors_[[0, -1]], again, atol=1e-5)
    assert not np.allclose(moved.vectors_[0], rec.vectors_[order[0]], atol=1e-3)


def test_the_fast_paths_rank_as_the_scores_do():
    """``recommend`` and ``audience`` (the blocked top-K over the tastes, never a users x items
    matrix) return what ranking the full ``score`` matrix returns, and the tastes computed for
    every user at once are each user's own weighted mean."""
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 30
    rows = [(u, int(rng.integers(n_items)), int(rng.choice([1, 0, -1])), t) for u in range(n_users - 5)
            for t in range(int(rng.integers(1, 12)))]
    rows += [(n_users - 5, 2, 0, 1)]  # only a dislike: no taste once dislikes weigh 0
    events = make(rows)  # the last four users have no history at all
    history = History.of(events, n_users)
    users, asof = np.arange(n_users, dtype=np.int64)[::-1].copy(), np.zeros(n_users, np.int64)
    allowed = rng.random(n_items) > 0.2
    for half_life, negative_weight in ((0.0, 1.0), (3.0, 0.0), (5.0, -1.0)):
        rec = Given(rng.normal(size=(n_items, 8)), half_life, negative_weight).fit(snapshot(n_users, n_items, events), events)
        taste, has = rec.tastes(users, history)
        for row, user in enumerate(users):
            r = history.rows(int(user))
            mine = rec.weights(events.label[r]) @ rec.vectors_[events.item[r]]
            assert has[row] == (mine != 0).any() and np.allclose(taste[row], mine, atol=1e-6)
        fast = rec.recommend(users, history, asof, 7, allowed=allowed)
        slow = Recommender.recommend(rec, users, history, asof, 7, allowed=allowed)
        assert np.array_equal(fast[1], slow[1]) and np.allclose(fast[0], slow[0], atol=1e-5)
        assert (fast[1][~has] == -1).all() and (fast[1][has] >= 0).all()
        # Shipped to the Spark engine's workers, the model carries its vectors once.
        assert len(pickle.dumps(rec)) < 1.2 * len(pickle.dumps(Given(rec.vectors_).fit(snapshot(n_users, n_items, events), events)))
        eligible = rng.random(n_users) > 0.3
        fast = rec.audience(users, history, asof, 6, eligible=eligible)
        slow = Recommender.audience(rec, users, history, asof, 6, eligible=eligible)
        assert np.array_equal(fast[1], slow[1]) and np.allclose(fast[0], slow[0], atol=1e-5)
