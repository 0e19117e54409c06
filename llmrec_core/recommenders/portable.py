"""A fitted recommender as tensors and plain values, and back onto any day's catalogue.

``rec.export()`` gives a dict with a ``kind``; :func:`restore` puts it onto a snapshot. Items
(and users, for models that keep per-user factors) are matched by ID, so a catalogue that grew
since training keeps working: the LLM and the content baseline encode a new item from its text
(cold start), the other models cannot score what they never saw (-inf). The registry stores
these dicts (see :mod:`llmrec_core.registry.bundle`), so the scoring job can serve any of them.
"""

from __future__ import annotations

from llmrec_core.data.snapshot import Snapshot
from llmrec_core.recommenders.als import SparkALS
from llmrec_core.recommenders.base import Recommender
from llmrec_core.recommenders.classic import EASE, ItemKNN, Popularity
from llmrec_core.recommenders.content import ContentTaste
from llmrec_core.recommenders.llm import LlmRecommender
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.settings import TextSettings

KINDS = {"llmrec": LlmRecommender, "popularity": Popularity, "item_knn": ItemKNN, "ease": EASE, "als": SparkALS,
         "content": ContentTaste}


def restore(state: dict, snap: Snapshot, device: str = "auto", *, reranker: dict | None = None,
            text: TextSettings | None = None) -> Recommender:
    """The exported recommender ``state`` on ``snap``; with ``reranker`` (a re-ranker's export),
    wrapped in its cross-encoder."""
    kind = state.get("kind", "llmrec")
    if kind == "rerank":
        return restore(state["base"], snap, device, reranker=state, text=text)
    if kind not in KINDS:
        raise ValueError(f"unknown recommender kind {kind!r}; known: {sorted(KINDS)}")
    rec = KINDS[kind].restore(state, snap, device)
    if reranker is not None:
        from llmrec_core.recommenders.llm import pick_device

        rec = Reranked.restore(reranker, rec, snap, text or TextSettings(), str(pick_device(device)))
    return rec
