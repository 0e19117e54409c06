"""Reasons come from the most similar positive behaviour of the user, or say what the row is."""

from __future__ import annotations

import numpy as np

from llmrec_core.model_settings import TextSettings
from llmrec_core.scoring.reasons import reasons_for_user


def test_reason_is_the_most_similar_behaviour():
    s = TextSettings()
    rec = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    hist = np.array([[0.9, 0.1], [0.1, 0.9], [1.0, 0.0]])
    out = reasons_for_user(s, rec, hist, ["rate", "purchase", "rate"], ["Toy Story (1995)", "Heat (1995)", "Jaws (1975)"],
                           np.array([1, 1, 0]), fallback="popular")
    # Jaws is the closest to item 0 but was rated low: never a reason.
    assert out[0] == "Because you rated Toy Story (1995) highly"
    assert out[1] == "Because you bought Heat (1995)"
    # Item 2 is equally close to both usable behaviours: the newer one is the reason.
    assert out[2] == "Because you bought Heat (1995)"


def test_fallback_reasons_and_unknown_event_types():
    s = TextSettings()
    rec = np.ones((2, 2))
    assert reasons_for_user(s, rec, np.zeros((0, 2)), [], [], np.zeros(0), fallback="popular") == ["Popular this week"] * 2
    assert reasons_for_user(s, rec, np.ones((1, 2)), ["rate"], ["X"], np.array([0]), fallback="profile") == ["Picked for your profile"] * 2
    out = reasons_for_user(s, rec[:1], np.ones((1, 2)), ["wishlist"], ["Alien (1979)\x00"], np.array([-1]), fallback="popular")
    assert out == ["Because of your interest in Alien (1979)"]
