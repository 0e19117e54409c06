"""Reasons come from the most similar usable behaviour of the user, or say what the row is."""

from __future__ import annotations

import numpy as np

from llmrec_core.io.serving_schema import COLD_TEXT, MODEL, POPULAR
from llmrec_core.scoring.reasons import pick_behaviours, reason_texts
from llmrec_core.settings import TextSettings

# Items 0..4: 0 and 1 point one way, 2 the other, 3 in between, 4 like 0.
VECTORS = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7], [2.0, 0.0]], np.float32)
TITLES = ["Toy Story (1995)", "Babe (1995)", "Heat (1995)", "Jaws (1975)", "Alien (1979)\x00"]


def test_reason_is_the_most_similar_usable_behaviour_newest_on_ties():
    # One user; history (oldest first): rated 0 highly, bought 2, rated 4 low (explicit negative).
    hist = (np.array([0, 3]), np.array([0, 2, 4]))
    labels = np.array([1, 1, 0], np.int8)
    recs = np.array([[1, 3, -1]])
    choice = pick_behaviours(VECTORS, recs, hist, labels)
    # Item 1 is closest to item 4, but 4 was rated low: item 0's behaviour is the reason.
    # Item 3 is equally close to 0 and 2: the newer behaviour (2) wins. Padding has none.
    assert choice.tolist() == [[0, 1, -1]]
    out = reason_texts(TextSettings(), choice, np.array([MODEL]), hist[1], np.array(["rate", "purchase", "rate"], object), TITLES)
    assert out.tolist() == [["Because you rated Toy Story (1995) highly", "Because you bought Heat (1995)", "Based on your recent activity"]]


def test_fallback_reasons_by_how_the_user_is_scored_and_unknown_event_types():
    s = TextSettings()
    # Users: popular (no history), profile only, model user with only a negative, model user with an unknown type.
    hist = (np.array([0, 0, 0, 1, 2]), np.array([4, 0]))
    labels = np.array([0, -1], np.int8)
    recs = np.array([[0, 1], [0, 1], [0, 1], [1, 2]])
    choice = pick_behaviours(VECTORS, recs, hist, labels)
    assert choice.tolist() == [[-1, -1], [-1, -1], [-1, -1], [1, 1]]
    out = reason_texts(s, choice, np.array([POPULAR, COLD_TEXT, MODEL, MODEL]), hist[1], np.array(["rate", "wishlist"], object), TITLES)
    assert out[0].tolist() == ["Popular this week"] * 2
    assert out[1].tolist() == ["Picked for your profile"] * 2
    assert out[2].tolist() == ["Based on your recent activity"] * 2
    assert out[3].tolist() == ["Because of your interest in Toy Story (1995)"] * 2
    # A list that is the same for everyone: no behaviour or profile is its reason, even a chosen one.
    out = reason_texts(s, choice, np.array([POPULAR, COLD_TEXT, MODEL, MODEL]), hist[1], np.array(["rate", "wishlist"], object), TITLES,
                       personal=False)
    assert out[0].tolist() == ["Popular this week"] * 2
    assert out[1:].ravel().tolist() == ["Among the most popular"] * 6


def test_reason_titles_are_cleaned_and_capped():
    s = TextSettings(max_behaviour_chars=32)
    hist = (np.array([0, 1]), np.array([4]))
    out = reason_texts(s, np.array([[0]]), np.array([MODEL]), hist[1], np.array(["view"], object), ["Alien\x00 (1979) " + "x" * 50] * 5)
    assert "\x00" not in out[0, 0] and len(out[0, 0]) <= 32 and out[0, 0].startswith("Because you viewed Alien (1979)")
