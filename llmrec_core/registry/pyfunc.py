"""The registered MLflow model: a pyfunc that scores (user history, candidate item) rows.

Input columns: ``history`` (item IDs, oldest first), ``item_id`` (the candidate), and
optionally ``event_types``/``values`` (per history entry), ``item_text`` (text of a candidate
the catalogue does not know: scored from text alone) and ``profile`` (the user's profile text).
Output: ``score`` = p(click | user, item); NaN for an unknown candidate without text. When a
tuned baseline won validation and was promoted instead (see :mod:`llmrec_core.registry.gate`),
the same request works: item-kNN, EASE and popularity score from the history's IDs (their
scores are not calibrated probabilities), and ALS, which knows only the users it was trained on,
answers NaN.

    mlflow models predict -m models:/llmrec@champion -i request.json -t json --env-manager local
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema

SIGNATURE = ModelSignature(
    inputs=Schema([
        ColSpec(Array(DataType.string), "history"),
        ColSpec(DataType.string, "item_id"),
        ColSpec(Array(DataType.string), "event_types", required=False),
        ColSpec(Array(DataType.double), "values", required=False),
        ColSpec(DataType.string, "item_text", required=False),
        ColSpec(DataType.string, "profile", required=False),
    ]),
    outputs=Schema([ColSpec(DataType.double, "score")]),
)


def input_example(item_ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"history": [item_ids[:3], []], "item_id": [item_ids[3], item_ids[4]]})


def _column(df: pd.DataFrame, name: str) -> list:
    return list(df[name]) if name in df.columns else [None] * len(df)


def _as_list(value) -> list | None:
    """A request cell as a list; missing cells (None, NaN) as None."""
    return list(value) if isinstance(value, list | tuple | np.ndarray) else None


class LlmrecPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from llmrec_core.registry.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"], gate=False)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from llmrec_core.data.interactions import Interactions, KindVocab
        from llmrec_core.data.snapshot import Snapshot
        from llmrec_core.days import parse_day
        from llmrec_core.recommenders.base import History
        from llmrec_core.recommenders.portable import restore
        from llmrec_core.settings import FeedbackSettings

        state = self.bundle.model
        df = model_input.reset_index(drop=True)
        ids = list(state["item_ids"])
        # A baseline's export carries no text: it scores from the history's IDs alone.
        texts, titles = list(state.get("item_texts") or ids), list(state.get("item_titles") or ids)
        index = {item: i for i, item in enumerate(ids)}
        for item, text in zip(df["item_id"], _column(df, "item_text"), strict=True):
            if item not in index and isinstance(text, str) and text:
                index[item] = len(ids)
                ids.append(item), texts.append(text), titles.append(text)
        users, items, types, values = [], [], [], []
        for row, (hist, et, val) in enumerate(zip(df["history"], _column(df, "event_types"), _column(df, "values"), strict=True)):
            hist, et, val = _as_list(hist) or [], _as_list(et), _as_list(val)
            for j, item in enumerate(hist):
                if item in index:
                    users.append(row)
                    items.append(index[item])
                    types.append(et[j] if et is not None and j < len(et) else None)
                    values.append(val[j] if val is not None and j < len(val) else np.nan)
        kinds = state.get("kinds") or KindVocab.from_feedback(FeedbackSettings())
        types_arr = np.array(types, dtype=object)
        values_arr = np.array(values, dtype=np.float32)
        kind = kinds.encode(types_arr, values_arr)
        kind[types_arr == None] = state.get("default_kind", 1)  # noqa: E711 (elementwise)
        n = len(users)
        # Request histories carry no times: one hour apart, predicted an hour after the last.
        ts = np.zeros(n, np.int64)
        user_arr = np.array(users, np.int32)
        for r in np.unique(user_arr):
            rows = np.flatnonzero(user_arr == r)
            ts[rows] = np.arange(len(rows)) * 3600
        events = Interactions(user_arr, np.array(items, np.int32), kind, np.full(n, -1, np.int8), ts, values_arr, types_arr)
        profiles = [p if isinstance(p, str) else "" for p in _column(df, "profile")]
        snap = Snapshot(parse_day(state.get("ds") or self.bundle.meta["ds"]), np.array(ids, dtype=object), titles, texts, np.ones(len(ids), bool),
                        np.array([str(i) for i in range(len(df))], dtype=object), profiles, events, kinds)
        rec = restore(state, snap)
        history = History.of(events, len(df))
        asof = np.array([ts[history.indptr[r + 1] - 1] + 3600 if history.indptr[r + 1] > history.indptr[r] else 0 for r in range(len(df))])
        scores = rec.score(np.arange(len(df)), history, asof)
        cand = np.array([index.get(item, -1) for item in df["item_id"]])
        logit = np.where(cand >= 0, scores[np.arange(len(df)), np.maximum(cand, 0)], np.nan)
        logit[~np.isfinite(logit)] = np.nan  # a model that cannot score this pair (ALS and a user it never saw)
        return pd.DataFrame({"score": 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))})
