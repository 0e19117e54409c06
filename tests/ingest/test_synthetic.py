"""The synthetic log generator: deterministic, shaped like real logs, bad lines on request."""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from llmrec_core.ingest.synthetic import SyntheticSpec, generate


def digest(raw: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(raw.rglob("*.jsonl*")):
        h.update(str(f.relative_to(raw)).encode())
        h.update(gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes())
    return h.hexdigest()


def events(raw: Path) -> list[dict]:
    out = []
    for f in sorted((raw / "events").rglob("*.jsonl")):
        for line in f.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError):
                out.append(None)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    spec = SyntheticSpec(users=200, items=100, events=3_000, seed=7, days=5, bad_rate=0.05, bots=1)
    generate(tmp_path / "a", spec)
    generate(tmp_path / "b", spec)
    generate(tmp_path / "c", SyntheticSpec(users=200, items=100, events=3_000, seed=8, days=5, bad_rate=0.05, bots=1))
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_shape_of_the_logs(tmp_path):
    raw = tmp_path / "raw"
    stats = generate(raw, SyntheticSpec(users=500, items=300, events=20_000, seed=1, days=10, bad_rate=0.02))
    assert sorted(p.name for p in (raw / "events").iterdir()) == [f"ds=2024-01-{d:02d}" for d in range(1, 11)]
    rows = events(raw)
    good = [r for r in rows if isinstance(r, dict) and "user_id" in r and isinstance(r.get("user_id"), str)
            and len(r["user_id"]) < 50 and r.get("event_type") in {"view", "click", "add_to_cart", "purchase", "rate"}]
    assert 0.01 < stats["bad"] / 20_000 < 0.03
    types = collections.Counter(r["event_type"] for r in good)
    assert set(types) == {"view", "click", "add_to_cart", "purchase", "rate"} and types["view"] > types["purchase"]
    # Power-law popularity: the top 10% of items take far more than 10% of events.
    per_item = collections.Counter(r["item_id"] for r in good)
    top = sum(n for _, n in per_item.most_common(30))
    assert top / len(good) > 0.3
    # Cold items: in the catalogue, never in an event.
    catalogue = {json.loads(line)["item_id"] for f in (raw / "items").rglob("*.jsonl") for line in f.read_text().splitlines()}
    assert len(catalogue) == 300 and len(catalogue - set(per_item)) > 0
    # Users appear in the profile table on the day of their first event (or day one, never active).
    profiles = {json.loads(line)["user_id"] for f in (raw / "users").rglob("*.jsonl") for line in f.read_text().splitlines()}
    assert {r["user_id"] for r in good} <= profiles
    # Both timestamp spellings occur.
    assert any(isinstance(r["ts"], int) for r in good) and any(isinstance(r["ts"], str) for r in good)


def test_gzip_output(tmp_path):
    generate(tmp_path, SyntheticSpec(users=50, items=20, events=500, seed=3, days=2, gzip=True))
    files = sorted((tmp_path / "events").rglob("*.jsonl.gz"))
    assert len(files) == 2
    assert sum(len(gzip.decompress(f.read_bytes()).splitlines()) for f in files) >= 500


def same_topic_share(raw: Path) -> float:
    """Among a user's consecutive events at most 30 minutes apart, the share on the same main topic."""
    topic = {}
    for f in (raw / "items").rglob("*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            topic[row["item_id"]] = row["categories"][0]
    by_user = collections.defaultdict(list)
    for r in events(raw):
        ts = r["ts"] if isinstance(r["ts"], int) else int(datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp())
        by_user[r["user_id"]].append((ts, topic[r["item_id"]]))
    pairs = same = 0
    for rows in by_user.values():
        rows.sort()
        for (t0, a), (t1, b) in zip(rows, rows[1:]):
            if t1 - t0 <= 1_800:
                pairs, same = pairs + 1, same + (a == b)
    return same / pairs


def test_session_intent_makes_a_session_stay_on_its_topic(tmp_path):
    spec = SyntheticSpec(users=300, items=400, events=20_000, seed=5, days=3, duplicate_rate=0.0)
    generate(tmp_path / "plain", spec)
    generate(tmp_path / "intent", replace(spec, session_intent=0.8))
    plain, intent = same_topic_share(tmp_path / "plain"), same_topic_share(tmp_path / "intent")
    # Without intent, two neighbours share a topic as often as two draws from the user's taste do.
    assert plain < 0.45 and intent > plain + 0.25, (plain, intent)
    assert len(events(tmp_path / "plain")) == len(events(tmp_path / "intent")) == 20_000
