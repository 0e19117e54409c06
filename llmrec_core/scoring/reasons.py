"""Readable reasons for recommendations, built from the user's own history.

The reason for recommending item i is the user's behaviour whose item is most similar to i
(cosine of the model's item vectors), rendered with the template of its event type: "Because
you rated Toy Story (1995) highly". Explicit negatives are never a reason. Without usable
history the reason says what the row is: popular, or picked from the profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmrec_core.model_settings import TextSettings
from llmrec_core.text import cap, clean_text


def because(settings: TextSettings, event_type: str, title: str) -> str:
    template = settings.reason_templates.get(event_type, settings.reason_default)
    return cap(template.format(title=clean_text(title)), settings.max_behaviour_chars)


def reasons_for_user(settings: TextSettings, rec_vecs: np.ndarray, hist_vecs: np.ndarray, hist_types: Sequence[str],
                     hist_titles: Sequence[str], hist_labels: np.ndarray, *, fallback: str) -> list[str]:
    """One reason per recommended item (rows of ``rec_vecs``).

    ``hist_*`` describe the user's behaviours (vectors of their items, event types, titles,
    feedback labels: 0 = explicit negative, never used as a reason). ``fallback`` is
    ``"popular"`` or ``"profile"``, used when no behaviour qualifies.
    """
    usable = np.flatnonzero(np.asarray(hist_labels) != 0)
    if not len(usable):
        text = settings.reason_popular if fallback == "popular" else settings.reason_profile
        return [text] * len(rec_vecs)
    h = hist_vecs[usable]
    sims = _unit(rec_vecs) @ _unit(h).T
    # The newest of equally similar behaviours: later columns win ties.
    best = h.shape[0] - 1 - np.argmax(sims[:, ::-1], axis=1)
    return [because(settings, hist_types[usable[j]], hist_titles[usable[j]]) for j in best]


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n == 0, 1.0, n)
