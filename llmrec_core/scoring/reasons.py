"""Readable reasons for recommendations, built from the user's own history.

The reason for recommending item i is the user's behaviour whose item is most similar to i
(cosine of the model's item vectors; the newest of equally similar ones), rendered with the
template of its event type: "Because you rated Toy Story (1995) highly". Explicit negatives
are never a reason. Rows without such a behaviour say what they are: popular, picked for the
profile, or based on recent activity; every row of a list that is the same for everyone says it
is popular.
"""

from __future__ import annotations

import numpy as np
import torch

from llmrec_core.io.serving_schema import COLD_TEXT, POPULAR
from llmrec_core.settings import TextSettings
from llmrec_core.text import cap, clean_text, format_number
from llmrec_core.topk import unit_rows


def because(settings: TextSettings, event_type: str, title: str, *, fresh: bool = False, value: float | None = None) -> str:
    """The reason text of one behaviour; ``fresh``: a behaviour of today (the intraday refresh)."""
    if fresh:
        template = settings.fresh_reason_templates.get(event_type, settings.fresh_reason_default)
        return cap(template.format(title=clean_text(title), value=format_number(value)), settings.max_behaviour_chars)
    template = settings.reason_templates.get(event_type, settings.reason_default)
    return cap(template.format(title=clean_text(title)), settings.max_behaviour_chars)


def pick_behaviours(item_vectors: np.ndarray | None, recs: np.ndarray, hist: tuple[np.ndarray, np.ndarray],
                    hist_labels: np.ndarray) -> np.ndarray:
    """For each recommended item (``recs`` [users, k], -1 = none) the position in the flat
    history arrays of the behaviour most similar to it, or -1 when the user has none usable.
    Without item vectors (a model with no notion of item likeness) the newest usable one."""
    indptr, items = hist
    n, k = recs.shape
    lengths = np.diff(indptr)
    width = int(lengths.max()) if n else 0
    choice = np.full((n, k), -1, np.int64)
    if width == 0:
        return choice
    if item_vectors is None:
        item_vectors = np.ones((int(max(items.max(initial=0), recs.max(initial=0))) + 1, 1), np.float32)
    unit = unit_rows(item_vectors)
    pos = indptr[:-1, None] + np.arange(width)[None, :]  # flat position of each (user, slot)
    present = np.arange(width)[None, :] < lengths[:, None]
    pos = np.where(present, pos, 0)
    usable = present & (hist_labels[pos] != 0) if len(hist_labels) else present
    h = torch.from_numpy(unit[items[pos]]).float()  # [n, width, d]
    r = torch.from_numpy(unit[np.maximum(recs, 0)]).float()  # [n, k, d]
    sims = torch.einsum("nkd,nwd->nkw", r, h).numpy()
    sims[~np.broadcast_to(usable[:, None, :], sims.shape)] = -np.inf
    # The newest of equally similar behaviours: search from the end.
    best = width - 1 - np.argmax(sims[:, :, ::-1], axis=2)
    found = np.take_along_axis(sims, best[:, :, None], 2)[:, :, 0] > -np.inf
    choice = np.where(found & (recs >= 0), np.take_along_axis(pos, best, 1), -1)
    return choice


def reason_texts(settings: TextSettings, choice: np.ndarray, kind: np.ndarray, hist_items: np.ndarray,
                 hist_types: np.ndarray, titles: list[str], fresh: np.ndarray | None = None,
                 hist_values: np.ndarray | None = None, personal: bool = True) -> np.ndarray:
    """The reason of each row ([users, k] object array) from :func:`pick_behaviours`'s choice.

    ``fresh`` (bool, like ``hist_items``) marks today's behaviours: their reason says so, with
    the rating from ``hist_values`` ("Because you just rated Fargo (1996) 5 stars").
    ``personal`` False: the recommender's list is the same for everyone, so every row it ranked
    says that it is popular (``reason_popular_list``), whatever the user's history or profile."""
    out = np.empty(choice.shape, dtype=object)
    out[:] = settings.reason_history if personal else settings.reason_popular_list
    out[kind == POPULAR] = settings.reason_popular
    if not personal:
        return out
    out[kind == COLD_TEXT] = settings.reason_profile
    cache: dict[tuple, str] = {}
    rows, cols = np.nonzero(choice >= 0)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        p = choice[r, c]
        now = fresh is not None and bool(fresh[p])
        value = None if not now or hist_values is None or np.isnan(hist_values[p]) else float(hist_values[p])
        key = (hist_types[p], int(hist_items[p]), now, value)
        text = cache.get(key)
        if text is None:
            text = cache[key] = because(settings, key[0], titles[key[1]], fresh=now, value=value)
        out[r, c] = text
    return out
