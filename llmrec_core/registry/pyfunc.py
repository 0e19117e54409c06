"""The registered MLflow model: a pyfunc that recommends items to a user now, and scores
(user, candidate item) pairs.

A request row is one user as of now: ``history`` (item IDs, oldest first) and optionally
``event_types``/``values`` (one per history entry) and ``profile`` (the user's profile text).

**Recommend** (no row names an ``item_id``): each row's top ``k`` items (``params``: ``{"k": 10}``;
default ``scoring.k``'s 20), from the recommender's own ``recommend`` through the nightly
engine (:func:`llmrec_core.scoring.engine.recommend`), so the rows are what the nightly table
would hold for that history: already-seen items, items unavailable on the version's day and
items its ``scoring.filters`` bar are never returned, and every row has the nightly reason.
``new_items`` (``[{"item_id": ..., "text": ..., "title": ...}]``, title optional) adds items the
catalogue does not know; the language model and the content baseline score them from their
text (the other baselines cannot).
Output, one row per (request row, rank), best first: ``request`` (the row's position),
``rank`` (from 1), ``item_id``, ``title``, ``score`` (as in the nightly table: the calibrated
click logit, ``sigmoid(score)`` = p(click), or the item's share of recent positive events for
the fallback), ``reason`` and ``source`` (``model``, ``cold_text``, ``popularity_fallback``).
A row with nothing to score from (no known history, no profile) gets the popularity fallback
of the version's day, as in the nightly table; so does a row the model cannot rank anything for
(ALS knows only the users it was trained on, never a request's; item-kNN, EASE, the content
baseline and ALS read no profile, and item-kNN and EASE nothing of a history of items they do
not know). Day D's titles, filters and fallback come from the bundle's catalogue
(:func:`llmrec_core.registry.bundle.catalogue`); a version registered without one allows every
item and has no fallback list (a row with nothing to score from gets no rows). The lists are the two-tower ones: the cross-encoder is not applied here.
In ``dataframe_records``, a key one row has must be in every row (``null`` where empty): MLflow
refuses a record that lacks an array column.

**Score** (every row names an ``item_id``, the candidate; ``item_text``: the text of a candidate
the catalogue does not know, scored from text alone): one ``score`` per row = p(click | user,
item); NaN for an unknown candidate without text. A promoted baseline answers the same requests:
item-kNN, EASE and popularity score from the history's IDs, the content baseline from the
text vectors of the history's items and the candidate's (none of their scores is a calibrated
probability), and ALS answers NaN. So do item-kNN, EASE and the content baseline for a row
whose history gives them nothing to score from (empty, or only items they do not know).

    mlflow models serve -m models:/llmrec@champion --host 127.0.0.1 --port 5001 --env-manager local
    curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
        -d '{"dataframe_records": [{"history": ["1", "50"]}], "params": {"k": 5}}'
    mlflow models predict -m models:/llmrec@champion -i request.json -t json --env-manager local
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Object, ParamSchema, ParamSpec, Property, Schema

from llmrec_core.settings import ScoringSettings

if TYPE_CHECKING:  # the data layer is imported where a request is built, not where the signature is read
    from llmrec_core.data.snapshot import Snapshot
    from llmrec_core.recommenders.base import History

NEW_ITEM = Object([Property("item_id", DataType.string), Property("text", DataType.string),
                   Property("title", DataType.string, required=False)])
SIGNATURE = ModelSignature(
    inputs=Schema([
        ColSpec(Array(DataType.string), "history"),
        ColSpec(DataType.string, "item_id", required=False),
        ColSpec(Array(DataType.string), "event_types", required=False),
        ColSpec(Array(DataType.double), "values", required=False),
        ColSpec(DataType.string, "item_text", required=False),
        ColSpec(DataType.string, "profile", required=False),
        ColSpec(Array(NEW_ITEM), "new_items", required=False),
    ]),
    # Scoring answers ``score`` alone; recommending, every column.
    outputs=Schema([
        ColSpec(DataType.long, "request", required=False),
        ColSpec(DataType.long, "rank", required=False),
        ColSpec(DataType.string, "item_id", required=False),
        ColSpec(DataType.string, "title", required=False),
        ColSpec(DataType.double, "score"),
        ColSpec(DataType.string, "reason", required=False),
        ColSpec(DataType.string, "source", required=False),
    ]),
    params=ParamSchema([ParamSpec("k", DataType.long, ScoringSettings().k)]),
)


def input_example(item_ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"history": [item_ids[:3], []], "item_id": [item_ids[3], item_ids[4]]})


def _column(df: pd.DataFrame, name: str) -> list:
    return list(df[name]) if name in df.columns else [None] * len(df)


def _as_list(value) -> list | None:
    """A request cell as a list; missing cells (None, NaN) as None."""
    return list(value) if isinstance(value, list | tuple | np.ndarray) else None


def _k(params: dict | None) -> int:
    """``k`` of a recommendation request, within the bounds of ``scoring.k``."""
    from pydantic import ValidationError

    k = (params or {}).get("k", ScoringSettings().k)
    try:
        return ScoringSettings(k=k).k
    except ValidationError as err:
        raise MlflowException.invalid_parameter_value(f"k={k!r}: {err.errors()[0]['msg']}") from None


def _settings(meta: dict, section: str, cls):
    """A settings section as the version was trained with (``meta.json``), or its defaults."""
    return cls.model_validate(meta.get("settings", {}).get(section, {}))


@dataclass
class Request:
    """Request rows as a snapshot: the version's catalogue plus the request's new items, one
    user per row, whose behaviours are one hour apart and predicted an hour after the last
    (a request carries no times)."""

    snap: Snapshot
    history: History
    asof: np.ndarray
    index: dict[str, int]  # item ID -> item index in ``snap``


def build_request(bundle, df: pd.DataFrame, new_items: list[tuple[str, str, str]]) -> Request:
    """``df``'s rows on the catalogue of ``bundle`` with ``new_items`` ((ID, text, title) of items
    it does not know) added. History entries of items known to neither are left out."""
    from llmrec_core.data.interactions import Interactions, KindVocab, feedback_labels
    from llmrec_core.data.snapshot import Snapshot
    from llmrec_core.days import parse_day
    from llmrec_core.recommenders.base import History
    from llmrec_core.settings import FeedbackSettings

    state, catalogue = bundle.model, bundle.catalogue or {}
    ids = list(state["item_ids"])
    # An export without texts (the baselines but content) scores from the history's IDs alone.
    texts, titles = list(state.get("item_texts") or ids), list(state.get("item_titles") or ids)
    named = dict(zip(catalogue.get("item_ids", []), catalogue.get("titles", []), strict=True))
    titles = [named.get(item, title) for item, title in zip(ids, titles, strict=True)]
    index = {item: i for i, item in enumerate(ids)}
    for item, text, title in new_items:
        if item not in index and isinstance(text, str) and text:
            index[item] = len(ids)
            ids.append(item), texts.append(text), titles.append(title if isinstance(title, str) and title else text)
    users, items, types, values = [], [], [], []
    for row, (hist, et, val) in enumerate(zip(df["history"], _column(df, "event_types"), _column(df, "values"), strict=True)):
        hist, et, val = _as_list(hist) or [], _as_list(et), _as_list(val)
        for j, item in enumerate(hist):
            if item in index:
                users.append(row)
                items.append(index[item])
                types.append(et[j] if et is not None and j < len(et) else None)
                values.append(val[j] if val is not None and j < len(val) else np.nan)
    feedback = _settings(bundle.meta, "feedback", FeedbackSettings)
    kinds = state.get("kinds") or KindVocab.from_feedback(feedback)
    types_arr = np.array(types, dtype=object)
    values_arr = np.array(values, dtype=np.float32)
    kind = kinds.encode(types_arr, values_arr)
    kind[types_arr == None] = state.get("default_kind", 1)  # noqa: E711 (elementwise)
    n = len(users)
    ts = np.zeros(n, np.int64)
    user_arr = np.array(users, np.int32)
    for r in np.unique(user_arr):
        rows = np.flatnonzero(user_arr == r)
        ts[rows] = np.arange(len(rows)) * 3600
    label = feedback_labels(feedback, types_arr, values_arr)  # explicit negatives are never a reason
    events = Interactions(user_arr, np.array(items, np.int32), kind, label, ts, values_arr, types_arr)
    profiles = [p if isinstance(p, str) else "" for p in _column(df, "profile")]
    # User IDs no clean event can carry (control characters are quarantined), so that a model
    # keyed by user ID (ALS) never mistakes a request for a user it was trained on.
    user_ids = np.array([f"\x00request {r}" for r in range(len(df))], dtype=object)
    snap = Snapshot(parse_day(state.get("ds") or bundle.meta["ds"]), np.array(ids, dtype=object), titles, texts, np.ones(len(ids), bool),
                    user_ids, profiles, events, kinds)
    history = History.of(events, len(df))
    asof = np.array([ts[history.indptr[r + 1] - 1] + 3600 if history.indptr[r + 1] > history.indptr[r] else 0 for r in range(len(df))])
    return Request(snap, history, asof, index)


def recommend_inputs(bundle, req: Request, rec, k: int):
    """The nightly engine's :class:`~llmrec_core.scoring.engine.Scoring` for the request's users,
    decided by :func:`llmrec_core.scoring.inputs.assemble` as the nightly job decides it, with what
    may be recommended and the popularity fallback of the version's day (the bundle's catalogue;
    a version registered without one allows every item and has no fallback list)."""
    from llmrec_core.recommenders.classic import by_id
    from llmrec_core.scoring.inputs import assemble
    from llmrec_core.settings import TextSettings

    snap, catalogue = req.snap, bundle.catalogue
    allowed = np.ones(snap.n_items, bool)
    popular, shares = np.zeros(0, np.int64), np.zeros(0)
    if catalogue:
        rows = by_id(catalogue["item_ids"], snap.item_ids)  # the request's new items are in no catalogue: allowed
        allowed[rows >= 0] = np.asarray(catalogue["allowed"], bool)[rows[rows >= 0]]
        where = np.full(len(catalogue["item_ids"]), -1, np.int64)
        where[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
        popular = where[np.asarray(catalogue["popular"], np.int64)]
        shares = np.asarray(catalogue["popular_shares"], np.float64)[popular >= 0]
        popular = popular[popular >= 0]
    return assemble(rec, req.history, req.asof, snap.profile_texts, allowed, list(snap.item_titles), popular, shares,
                    _settings(bundle.meta, "text", TextSettings), k, _settings(bundle.meta, "scoring", ScoringSettings))


class LlmrecPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from llmrec_core.registry.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"], gate=False)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        df = model_input.reset_index(drop=True)
        named = [isinstance(item, str) and item != "" for item in _column(df, "item_id")]
        if any(named) and not all(named):
            raise MlflowException.invalid_parameter_value(
                "either every request row names an item_id (scoring pairs) or none does (recommending)")
        if len(df) and all(named):
            return self.score(df)
        return self.recommend(df, _k(params))

    def score(self, df: pd.DataFrame) -> pd.DataFrame:
        """p(click) of each row's (history, item_id) pair."""
        from llmrec_core.recommenders.portable import restore

        new = [(item, text, text) for item, text in zip(df["item_id"], _column(df, "item_text"), strict=True)]
        req = build_request(self.bundle, df, new)
        rec = restore(self.bundle.model, req.snap)
        scores = rec.score(np.arange(len(df)), req.history, req.asof)
        cand = np.array([req.index.get(item, -1) for item in df["item_id"]])
        logit = np.where(cand >= 0, scores[np.arange(len(df)), np.maximum(cand, 0)], np.nan)
        logit[~np.isfinite(logit)] = np.nan  # a model that cannot score this pair (ALS and a user it never saw, a baseline and an empty history)
        return pd.DataFrame({"score": 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))})

    def recommend(self, df: pd.DataFrame, k: int) -> pd.DataFrame:
        """Each row's top ``k``, through the nightly engine: one output row per (request row, rank)."""
        from llmrec_core.recommenders.portable import restore
        from llmrec_core.scoring import engine

        new = [(x.get("item_id"), x.get("text"), x.get("title")) for cell in _column(df, "new_items") for x in _as_list(cell) or []
               if isinstance(x, dict)]
        req = build_request(self.bundle, df, new)
        sc = recommend_inputs(self.bundle, req, restore(self.bundle.model, req.snap), k)
        users = np.arange(len(df))
        rows = engine.recommend(users, sc)  # a row the model can rank nothing for gets the fallback there
        item = rows["item"].to_numpy()
        return pd.DataFrame({
            "request": rows["user"].to_numpy().astype(np.int64), "rank": rows["rank"].to_numpy().astype(np.int64),
            "item_id": req.snap.item_ids[item], "title": np.array(req.snap.item_titles, dtype=object)[item],
            "score": rows["score"].to_numpy(), "reason": rows["reason"].to_numpy(zero_copy_only=False),
            "source": rows["source"].to_numpy(zero_copy_only=False),
        })
