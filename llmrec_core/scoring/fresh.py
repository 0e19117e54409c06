"""The intraday refresh's ranking step: the nightly state of D-1 plus today's behaviours.

- :func:`with_fresh`: the snapshot of D-1 with the day's clean events appended to the users'
  sequences (users new today added with an empty profile). Events already in the lake of D-1
  (a copy that landed twice) and events on items the catalogue of D-1 does not know are left
  out and counted; nothing else is dropped.
- :func:`fresh_lists`: for the users who acted today, the champion's ``recommend`` list over
  their extended history: new user vectors, new candidates, and (when the recommender is
  wrapped in its cross-encoder) a re-rank over "today's behaviours as text [SEP] candidate".
  Everything the user has seen, today's items included, is excluded. Reasons can point at a
  behaviour of today ("Because you just rated Fargo (1996) 5 stars").

The lists come from the same :func:`llmrec_core.scoring.engine.recommend` as the nightly table,
so the refreshed rows have the nightly columns, checks and reasons.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llmrec_core.data.interactions import Interactions, feedback_labels
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.recommenders.base import Recommender
from llmrec_core.recommenders.reranked import Reranked
from llmrec_core.scoring import engine
from llmrec_core.scoring.inputs import scoring_inputs
from llmrec_core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class FreshDay:
    snap: Snapshot          # the catalogue of D-1; events: D-1's history with today's behaviours appended
    fresh: np.ndarray       # bool over ``snap.events``: today's behaviours
    users: np.ndarray       # user indices with at least one fresh behaviour, ascending
    per_user: np.ndarray    # [n_users] fresh behaviours per user
    since: np.ndarray       # [n_users] flat position of each user's first fresh behaviour
    counts: dict[str, int]  # fresh, already_in_lake, unknown_item, new_users, users

    @property
    def n_fresh(self) -> int:
        return int(self.fresh.sum())


def with_fresh(settings: Settings, snap: Snapshot, events: pa.Table, in_lake: np.ndarray | None = None) -> FreshDay:
    """``snap`` (the snapshot of D-1) with ``events`` (clean events of D so far: event_id, user_id,
    item_id, event_type, value, ts) appended. ``in_lake``: bool per event, already in D-1's lake."""
    n = events.num_rows
    in_lake = np.zeros(n, bool) if in_lake is None else np.asarray(in_lake, bool)
    item_idx = pc.index_in(events["item_id"], value_set=pa.array(snap.item_ids.astype(str), pa.string()))
    item = item_idx.to_numpy(zero_copy_only=False)
    unknown_item = np.isnan(item.astype(float)) & ~in_lake
    keep = ~in_lake & ~unknown_item
    # Same-second events in event-id order, as in the nightly snapshot (an order unrelated to the item).
    order = np.flatnonzero(keep)
    order = order[np.argsort(events["event_id"].to_numpy(zero_copy_only=False).astype(str)[order], kind="stable")]
    users_today = events["user_id"].to_numpy(zero_copy_only=False).astype(str)[order]
    known = {u: i for i, u in enumerate(snap.user_ids.astype(str))}
    new_ids = sorted(set(users_today) - set(known))
    user_ids = np.concatenate([snap.user_ids, np.array(new_ids, dtype=object)]) if new_ids else snap.user_ids
    known.update({u: len(snap.user_ids) + i for i, u in enumerate(new_ids)})
    event_type = events["event_type"].to_numpy(zero_copy_only=False).astype(object)[order]
    value = events["value"].fill_null(float("nan")).to_numpy(zero_copy_only=False).astype(np.float32)[order]
    today = Interactions(
        user=np.array([known[u] for u in users_today], np.int32),
        item=item[order].astype(np.int32),
        kind=snap.kinds.encode(event_type, value),
        label=feedback_labels(settings.feedback, event_type, value),
        ts=pc.cast(events["ts"], pa.int64()).to_numpy()[order] // 1_000_000,
        value=value,
        event_type=event_type,
    )
    both = Interactions(**{f.name: np.concatenate([getattr(snap.events, f.name), getattr(today, f.name)])
                           for f in dataclasses.fields(Interactions)})
    flag = np.concatenate([np.zeros(len(snap.events), bool), np.ones(len(today), bool)])
    sort = np.lexsort((both.ts, both.user))  # stable: D-1's events before today's in the same second
    both, flag = both.take(sort), flag[sort]
    n_users = len(user_ids)
    per_user = np.bincount(both.user[flag], minlength=n_users)
    indptr = both.indptr(n_users)
    since = indptr[1:].copy()
    np.minimum.at(since, both.user[flag], np.flatnonzero(flag))
    extended = dataclasses.replace(snap, ds=snap.ds + dt.timedelta(days=1), user_ids=user_ids,
                                   profile_texts=list(snap.profile_texts) + [""] * len(new_ids), events=both)
    counts = {"fresh": len(today), "already_in_lake": int(in_lake.sum()), "unknown_item": int(unknown_item.sum()),
              "new_users": len(new_ids), "users": int((per_user > 0).sum())}
    log.info("today's behaviours: %s", counts)
    return FreshDay(extended, flag, np.flatnonzero(per_user > 0), per_user, since, counts)


def fresh_lists(settings: Settings, day: FreshDay, rec: Recommender, allowed: np.ndarray,
                moment: int | np.ndarray) -> tuple[pa.Table, engine.Scoring]:
    """The user rows (``engine.USER_ROWS``, indices into ``day.snap``) of every user who acted
    today, ranked as of ``moment`` (epoch seconds; one for all, or one per user of ``day.snap``),
    and the scoring inputs they came from."""
    sc = scoring_inputs(settings, day.snap, rec, allowed)
    sc.asof = np.broadcast_to(np.asarray(moment, np.int64), (day.snap.n_users,)).copy()
    sc.fresh = day.fresh
    if isinstance(rec, Reranked):
        rec.left_since, rec.left_most = day.since, settings.refresh.text_behaviours
    step = settings.refresh.user_block
    parts = [engine.recommend(day.users[s : s + step], sc) for s in range(0, len(day.users), step)]
    rows = pa.concat_tables(parts) if parts else engine.USER_ROWS.empty_table()
    return rows.sort_by([("user", "ascending"), ("rank", "ascending")]), sc
