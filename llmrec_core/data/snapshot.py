"""The lake as of day D, read with pyarrow into arrays: events, catalogue and user profiles.

A run for day D sees ``clean_events`` partitions ``ds <= D`` with ``ts < D + 1 day`` (late
arrivals count; the future never does), the ``items`` and ``users`` snapshots of D, and the
texts rendered from them. Event copies that landed in two partitions are kept once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from llmrec_core.data.interactions import Interactions, KindVocab, feedback_labels
from llmrec_core.errors import MissingInputError
from llmrec_core.io import lake
from llmrec_core.settings import Settings
from llmrec_core.text import TextRenderer

log = logging.getLogger(__name__)


def day_start(day: date) -> int:
    return int(datetime.combine(day, time(), tzinfo=timezone.utc).timestamp())


@dataclass
class Snapshot:
    ds: date
    item_ids: np.ndarray  # str, index = item index
    item_titles: list[str]
    item_texts: list[str]
    item_available: np.ndarray  # bool
    user_ids: np.ndarray  # str, index = user index
    profile_texts: list[str]
    events: Interactions
    kinds: KindVocab

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def end_ts(self) -> int:
        """Exclusive end of what day D may see."""
        return day_start(self.ds + timedelta(days=1))

    def counts(self) -> dict[str, int]:
        return {"events": len(self.events), "users": self.n_users, "items": self.n_items}


def _partition(settings: Settings, table: str, ds: date) -> pa.Table:
    path = lake.partition(settings.lake_table(table), ds)
    if not path.is_dir():
        raise MissingInputError(f"no {table} snapshot for {ds} at {path}: run `llmrec etl --ds {ds}` first")
    return pads.dataset(path, format="parquet").to_table()


def read_events(settings: Settings, ds: date) -> pa.Table:
    root = settings.lake_table("clean_events")
    if not root.is_dir():
        raise MissingInputError(f"no clean events at {root}: run `llmrec etl` first")
    end = datetime.combine(ds + timedelta(days=1), time(), tzinfo=timezone.utc)
    data = pads.dataset(root, format="parquet", partitioning=pads.partitioning(pa.schema([("ds", pa.date32())]), flavor="hive"))
    cols = ["event_id", "user_id", "item_id", "event_type", "value", "ts"]
    table = data.to_table(columns=cols, filter=(pc.field("ds") <= pa.scalar(ds)) & (pc.field("ts") < pa.scalar(end, data.schema.field("ts").type)))
    # One copy per event id, the earliest (copies can land in two daily partitions).
    table = table.take(pc.sort_indices(table, [("event_id", "ascending"), ("ts", "ascending")]))
    ids = table["event_id"]
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)) if len(ids) > 1 else pa.array([], pa.bool_())
    keep = pa.concat_arrays([pa.array([True] * min(len(ids), 1), pa.bool_()), first.combine_chunks() if len(ids) > 1 else first])
    return table.filter(keep)


def load_snapshot(settings: Settings, ds: date) -> Snapshot:
    """The lake as of ``ds``. Events come out sorted by (user, ts), same-second events in the
    order of their event ids (a hash: deterministic and unrelated to the item)."""
    render = TextRenderer(settings.text)
    items = _partition(settings, "items", ds).sort_by("item_id")
    users = _partition(settings, "users", ds).sort_by("user_id")
    events = read_events(settings, ds)
    item_ids = items["item_id"].to_numpy(zero_copy_only=False).astype(object)
    user_ids = users["user_id"].to_numpy(zero_copy_only=False).astype(object)
    rows = items.select(["item_id", "title", "description", "categories", "attributes"]).to_pylist()
    item_texts = [render.item({**r, "attributes": dict(r["attributes"] or [])}) for r in rows]
    titles = [r["title"] or f"Item {r['item_id']}" for r in rows]
    profiles = [render.profile(dict(a or [])) for a in users["attributes"].to_pylist()]
    user_idx = pc.index_in(events["user_id"], value_set=users["user_id"]).to_numpy(zero_copy_only=False)
    item_idx = pc.index_in(events["item_id"], value_set=items["item_id"]).to_numpy(zero_copy_only=False)
    known = ~(np.isnan(user_idx.astype(float)) | np.isnan(item_idx.astype(float)))
    if not known.all():
        # build_sequences adds every id seen in events to the snapshots, so this is a broken lake.
        raise MissingInputError(f"{int((~known).sum())} events of {ds} refer to ids missing from the snapshots")
    event_type = events["event_type"].to_numpy(zero_copy_only=False).astype(object)
    value = events["value"].fill_null(float("nan")).to_numpy(zero_copy_only=False).astype(np.float32)
    kinds = KindVocab.from_feedback(settings.feedback)
    inter = Interactions(
        user=user_idx.astype(np.int32),
        item=item_idx.astype(np.int32),
        kind=kinds.encode(event_type, value),
        label=feedback_labels(settings.feedback, event_type, value),
        ts=pc.cast(events["ts"], pa.int64()).to_numpy() // 1_000_000,
        value=value,
        event_type=event_type,
    ).sorted()
    snap = Snapshot(
        ds=ds,
        item_ids=item_ids,
        item_titles=titles,
        item_texts=item_texts,
        item_available=items["available"].fill_null(True).to_numpy(zero_copy_only=False).astype(bool),
        user_ids=user_ids,
        profile_texts=profiles,
        events=inter,
        kinds=kinds,
    )
    log.info("snapshot %s: %s", ds, snap.counts())
    return snap


def load_item_facets(settings: Settings, ds: date) -> tuple[list[list[str]], list[dict[str, str]]]:
    """Categories and attributes of the catalogue of ``ds``, in the snapshot's item order
    (what business-rule filters look at). Attribute values come back as strings."""
    items = _partition(settings, "items", ds).sort_by("item_id").select(["categories", "attributes"]).to_pylist()
    categories = [list(r["categories"] or []) for r in items]
    attributes = [{str(k): str(v) for k, v in (r["attributes"] or [])} for r in items]
    return categories, attributes


def item_titles(settings: Settings, ds: date, item_ids: list[str]) -> dict[str, str]:
    """Titles of some items in the catalogue of ``ds`` (empty when that snapshot is gone)."""
    path = lake.partition(settings.lake_table("items"), ds)
    if not path.is_dir() or not item_ids:
        return {}
    table = pads.dataset(path, format="parquet").to_table(columns=["item_id", "title"],
                                                          filter=pc.field("item_id").isin(pa.array(item_ids, pa.string())))
    return dict(zip(table["item_id"].to_pylist(), table["title"].to_pylist(), strict=True))


def data_fingerprint(snap: Snapshot, train: Interactions) -> str:
    """A digest of everything a model trains on: every training event (who, what, kind, label,
    value, when) and every id and text of the catalogue and the users. A checkpoint records it,
    so a rerun after any data fix starts over instead of resuming a stale model."""
    digest = hashlib.sha256()
    for column in (train.user, train.item, train.kind, train.label, train.ts, train.value):
        digest.update(np.ascontiguousarray(column).tobytes())
    for strings in (snap.item_ids, snap.item_texts, snap.user_ids, snap.profile_texts):
        digest.update("\x1e".join(map(str, strings)).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1d")
    return digest.hexdigest()
