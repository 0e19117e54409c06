"""Generate realistic interaction logs at any scale, streamed to raw partitions.

The world: latent topics drive both item text (titles, descriptions, categories are drawn from a
topic's vocabulary) and user taste (a Dirichlet mixture over topics that drifts over the days).
Item popularity follows a power law; some items launch later and some never get an event (cold
items); some users have a profile but no events (cold users). Users act in sessions of a few
minutes: views, then clicks, add-to-carts and purchases down a funnel, and ratings that follow
taste. By default every event's topic is drawn from the user's taste on its own; with
``session_intent`` p, a session first draws one topic from that taste (what the user came for)
and each of its events keeps it with probability p, so a session's first behaviours say what
the rest of it is about. Optionally a share of malformed lines (every kind the cleaner
quarantines), resent duplicates, and bots. Events are produced day by day in vectorised batches and written as they
are made: memory does not grow with the number of events.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmrec_core.ingest.rawwriter import RawWriter

log = logging.getLogger(__name__)

TOPICS = {
    "Sci-Fi": "galactic quantum starship android orbit nebula cyborg warp colony signal",
    "Mystery": "secret shadow detective clue midnight cipher hidden vanishing inspector alibi",
    "Cooking": "kitchen spice recipe garlic oven rustic bread harvest sauce feast",
    "Jazz": "saxophone swing midnight blue trio groove improvisation velvet club rhythm",
    "Travel": "island journey coastal mountain passport atlas wander harbor trail summit",
    "Fitness": "strength cardio marathon core interval stretch endurance power sprint balance",
    "History": "empire ancient dynasty revolution chronicle medieval pharaoh legion archive crown",
    "Gardening": "bloom seedling orchard compost greenhouse herb petal soil meadow vine",
    "Finance": "market capital dividend ledger budget portfolio equity savings audit yield",
    "Horror": "haunted crypt scream phantom curse hollow ritual nightmare grave lantern",
    "Romance": "heart letters summer promise moonlight waltz embrace sweetheart vow rose",
    "Kids": "puppy rainbow adventure friendly bubble castle dragon giggle treasure balloon",
    "Tech": "circuit cloud robot compiler silicon network pixel algorithm kernel sensor",
    "Sports": "league champion stadium goal derby trophy rookie playoff coach rally",
    "Art": "canvas portrait sculpture gallery palette fresco charcoal mosaic studio easel",
    "Nature": "forest wildlife river glacier canyon prairie reef aurora falcon tundra",
}
FORMS = ["Guide", "Stories", "Collection", "Chronicles", "Handbook", "Edition", "Sessions", "Journal"]
EVENT_FUNNEL = ("view", "click", "add_to_cart", "purchase")
BAD_KINDS = (
    "not_json", "not_object", "missing_user_id", "bad_type_user_id", "control_chars_item_id",
    "too_long_user_id", "unknown_event_type", "rating_out_of_range", "rating_not_numeric",
    "ts_unparsable", "ts_before_1970", "ts_in_future", "ts_no_offset", "invalid_utf8", "blank_line",
)


@dataclass
class SyntheticSpec:
    users: int
    items: int
    events: int
    seed: int = 0
    bad_rate: float = 0.0
    days: int = 30
    start: dt.date = dt.date(2024, 1, 1)
    duplicate_rate: float = 0.003
    bots: int = 0
    gzip: bool = False
    topics: int = len(TOPICS)
    session_intent: float = 0.0


class _World:
    def __init__(self, spec: SyntheticSpec, rng: np.random.Generator):
        n_topics = min(spec.topics, len(TOPICS))
        self.topic_names = list(TOPICS)[:n_topics]
        self.vocab = [TOPICS[t].split() for t in self.topic_names]
        self.item_topic = rng.integers(0, n_topics, spec.items)
        self.item_second = rng.integers(0, n_topics, spec.items)
        rank = rng.permutation(spec.items) + 1
        self.popularity = 1.0 / rank.astype(float) ** 1.05
        self.popularity[rng.random(spec.items) < 0.05] = 0.0  # never interacted with: cold items
        self.launch_day = np.where(rng.random(spec.items) < 0.8, 0, rng.integers(0, spec.days, spec.items))
        self.taste_start = rng.dirichlet(np.full(n_topics, 0.3), spec.users)
        self.taste_end = 0.7 * self.taste_start + 0.3 * rng.dirichlet(np.full(n_topics, 0.3), spec.users)
        activity = rng.lognormal(0.0, 1.0, spec.users)
        activity[rng.random(spec.users) < 0.02] = 0.0  # profile only: cold users
        self.activity = activity / activity.sum()

    def taste(self, day: int, days: int) -> np.ndarray:
        f = day / max(days - 1, 1)
        return (1 - f) * self.taste_start + f * self.taste_end

    def item_row(self, i: int, rng: np.random.Generator, available: bool = True) -> dict:
        t, t2 = self.item_topic[i], self.item_second[i]
        words = self.vocab[t]
        w = rng.choice(words, 3, replace=False)
        title = f"{w[0].title()} {w[1].title()} {FORMS[i % len(FORMS)]}"
        extra = rng.choice(self.vocab[t2], 2, replace=False)
        desc = f"A {w[2]} {self.topic_names[t].lower()} pick with {extra[0]} and {extra[1]} notes."
        cats = [self.topic_names[t]] + ([self.topic_names[t2]] if t2 != t else [])
        attrs = {"price": round(float(rng.gamma(2.0, 12.0)), 2), "brand": f"brand-{i % 97}"}
        return {"item_id": f"i{i}", "title": title, "description": desc, "categories": cats,
                "attributes": attrs, "available": available}


def _user_row(u: int, rng: np.random.Generator) -> dict:
    bands = ["18-24", "25-34", "35-44", "45-54", "55+"]
    return {"user_id": f"u{u}", "attributes": {"age_band": bands[u % 5], "country": ["DE", "FR", "US", "BR", "JP"][u * 7 % 5],
                                                "plan": "premium" if rng.random() < 0.2 else "free"}}


def _ts_text(epoch: int, style: int) -> int | str:
    """Epoch seconds or ISO-8601 with one of a few offsets: the same instant either way."""
    if style == 0:
        return epoch
    offset = [0, 2, -5][style - 1]
    tz = dt.timezone(dt.timedelta(hours=offset))
    text = dt.datetime.fromtimestamp(epoch, tz).isoformat()
    return text.replace("+00:00", "Z")


def _bad_line(kind: str, day_start: int, rng: np.random.Generator) -> bytes:
    ts = day_start + int(rng.integers(0, 86_400))
    ok = {"user_id": "u1", "item_id": "i1", "event_type": "click", "ts": ts}
    if kind == "not_json":
        return json.dumps(ok)[:-7].encode()
    if kind == "not_object":
        return b'["u1", "i1", "click"]'
    if kind == "invalid_utf8":
        return b'{"user_id": "u\xff\xfe1", "item_id": "i1", "event_type": "click", "ts": ' + str(ts).encode() + b"}"
    if kind == "blank_line":
        return b"   "
    bad = dict(ok)
    if kind == "missing_user_id":
        del bad["user_id"]
    elif kind == "bad_type_user_id":
        bad["user_id"] = 12345
    elif kind == "control_chars_item_id":
        bad["item_id"] = "i1\u0007"
    elif kind == "too_long_user_id":
        bad["user_id"] = "u" * 400
    elif kind == "unknown_event_type":
        bad["event_type"] = "teleport"
    elif kind == "rating_out_of_range":
        bad.update(event_type="rate", value=11)
    elif kind == "rating_not_numeric":
        bad.update(event_type="rate", value="five")
    elif kind == "ts_unparsable":
        bad["ts"] = "yesterday at noon"
    elif kind == "ts_before_1970":
        bad["ts"] = "1969-07-20T20:17:00Z"
    elif kind == "ts_in_future":
        bad["ts"] = ts + 5 * 86_400
    elif kind == "ts_no_offset":
        bad["ts"] = dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return json.dumps(bad).encode()


def generate(raw_dir: Path, spec: SyntheticSpec, batch: int = 50_000) -> dict[str, int]:
    """Write ``spec.events`` events over ``spec.days`` days, plus items and users; returns counts."""
    rng = np.random.default_rng(spec.seed)
    world = _World(spec, rng)
    seen_user = np.zeros(spec.users, dtype=bool)
    per_day = np.full(spec.days, spec.events // spec.days)
    per_day[: spec.events % spec.days] += 1
    counter = 0
    stats = {"events": 0, "bad": 0, "duplicates": 0, "bot_events": 0}
    with RawWriter(raw_dir, gzip_output=spec.gzip) as out:
        for day_idx in range(spec.days):
            day = spec.start + dt.timedelta(days=day_idx)
            day_start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
            out.touch("events", day)
            launched = np.flatnonzero(world.launch_day == day_idx)
            for i in launched:
                out.write("items", day, world.item_row(int(i), rng))
            if day_idx > 0 and day_idx % 7 == 0:  # weekly availability changes
                for i in rng.choice(spec.items, max(1, spec.items // 200), replace=False):
                    if world.launch_day[i] <= day_idx:
                        out.write("items", day, world.item_row(int(i), rng, available=bool(rng.random() < 0.5)))
            if day_idx == 0:  # profiles of users who never act
                for u in np.flatnonzero(world.activity == 0):
                    out.write("users", day, _user_row(int(u), rng))
            live = world.launch_day <= day_idx
            pop = np.where(live, world.popularity, 0.0)
            topic_cdfs = []
            for t in range(len(world.topic_names)):
                w = np.where(world.item_topic == t, pop, 0.0)
                topic_cdfs.append(np.cumsum(w) / w.sum() if w.sum() > 0 else None)
            all_cdf = np.cumsum(pop) / pop.sum()
            taste_cdf = np.cumsum(world.taste(day_idx, spec.days), axis=1)
            remaining = int(per_day[day_idx])
            while remaining > 0:
                n = min(batch, remaining)
                remaining -= n
                counter = _emit_batch(out, rng, world, spec, day, day_start, n, counter, topic_cdfs, all_cdf,
                                      taste_cdf, seen_user, stats)
            for b in range(spec.bots if day_idx % 7 == 3 else 0):
                user = f"bot{b}"
                start = day_start + int(rng.integers(0, 80_000))
                for k in range(300):
                    item = f"i{int(rng.integers(0, spec.items))}"
                    out.write("events", day, {"user_id": user, "item_id": item, "event_type": "view", "ts": start + k // 10})
                    stats["bot_events"] += 1
    stats.update(items=int(spec.items), users=int(seen_user.sum() + (world.activity == 0).sum()))
    log.info("synthetic logs: %s", stats)
    return stats


def _topics(taste_cdf: np.ndarray, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One topic per row, drawn from that row's user's taste of the day."""
    return np.minimum((taste_cdf[users] < rng.random((len(users), 1))).sum(axis=1), taste_cdf.shape[1] - 1)


def _emit_batch(out, rng, world, spec, day, day_start, n, counter, topic_cdfs, all_cdf, taste_cdf, seen_user, stats):
    users = rng.choice(spec.users, n, p=world.activity)
    # Sessions: consecutive rows of one user a minute or so apart.
    session_len = rng.geometric(1 / 6, n)
    starts = np.cumsum(session_len)
    owner = np.searchsorted(starts, np.arange(n), side="right")
    users = users[np.minimum(owner, n - 1)]
    offset = rng.integers(0, 86_400 - 3_600, n)[np.minimum(owner, n - 1)]
    step = rng.exponential(45.0, n).astype(int)
    ts = day_start + np.minimum(offset + np.cumsum(step) % 3_000, 86_399)
    topics = _topics(taste_cdf, users, rng)
    if spec.session_intent > 0:  # extra draws only here: logs without intent keep their bytes
        first = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]  # each session's first row; owner numbers them 0, 1, ...
        intent = _topics(taste_cdf, users[first], rng)[owner]
        topics = np.where(rng.random(n) < spec.session_intent, intent, topics)
    r = rng.random(n)
    items = np.empty(n, dtype=np.int64)
    for t in np.unique(topics):
        sel = topics == t
        cdf = topic_cdfs[t] if topic_cdfs[t] is not None else all_cdf
        items[sel] = np.minimum(np.searchsorted(cdf, r[sel]), len(cdf) - 1)
    affinity = world.taste_start[users, world.item_topic[items]]
    funnel = np.minimum(rng.geometric(0.62, n) - 1, 3)
    is_rating = rng.random(n) < 0.1
    rating = np.clip(np.round(2.6 + 4.0 * affinity + rng.normal(0, 0.9, n)), 1, 5).astype(int)
    ts_style = rng.integers(0, 4, n)
    has_id = rng.random(n) < 0.9
    bad = rng.random(n) < spec.bad_rate
    dup = rng.random(n) < spec.duplicate_rate
    for k in range(n):
        if bad[k]:
            out.write_line("events", day, _bad_line(BAD_KINDS[int(rng.integers(0, len(BAD_KINDS)))], day_start, rng))
            stats["bad"] += 1
            continue
        u = int(users[k])
        if not seen_user[u]:
            seen_user[u] = True
            out.write("users", day, _user_row(u, rng))
        counter += 1
        row = {"user_id": f"u{u}", "item_id": f"i{int(items[k])}"}
        if has_id[k]:
            row["event_id"] = f"e{spec.seed}-{counter}"
        if is_rating[k]:
            row.update(event_type="rate", value=int(rating[k]))
        else:
            row["event_type"] = EVENT_FUNNEL[funnel[k]]
        row["ts"] = _ts_text(int(ts[k]), int(ts_style[k]))
        line = json.dumps(row, separators=(",", ":")).encode()
        out.write_line("events", day, line)
        stats["events"] += 1
        if dup[k]:
            out.write_line("events", day, line)
            stats["duplicates"] += 1
    return counter
