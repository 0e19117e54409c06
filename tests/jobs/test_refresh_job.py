"""The intraday refresh end to end on the toy lake: today's raw files cleaned with the nightly
rules, the active users' lists re-ranked with today's behaviours, published to a real DuckDB file
and merged with the nightly rows in the ``_current`` view."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from jobs import clean_logs, refresh, score
from llmrec_core.errors import DataQualityError, LlmrecError
from llmrec_core.io import lake
from llmrec_core.orchestration.tasks import refresh_pending
from llmrec_core.settings import load_settings
from tests.conftest import write_raw
from tests.toy import isolated_home, make_tiny, train_champion, write_toy_lake

K = 5


def _rate(user: str, item: str, value: float, at: str, ds: dt.date, event_id: str | None = None) -> dict:
    line = {"user_id": user, "item_id": item, "event_type": "rate", "value": value, "ts": f"{ds}T{at}Z"}
    return {**line, "event_id": event_id} if event_id else line


BAD = ["{not json", json.dumps([1, 2]), {"user_id": "u1", "item_id": "i1", "event_type": "rate", "value": 9, "ts": "2024-01-21T08:00:00Z"},
       {"user_id": "u1", "item_id": "i1", "event_type": "teleport", "ts": "2024-01-21T08:00:00Z"},
       {"user_id": "u2", "item_id": "i2", "event_type": "rate", "value": 4, "ts": "2024-01-21 08:00:00"}, ""]


@pytest.fixture(scope="module")
def world(tmp_path_factory, spark):
    """A toy lake up to ``last``, a champion with a cross-encoder, the nightly rows of ``last``
    published, and the first file of the next day (good and bad lines) landed."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("refresh") / "home"
    home.mkdir()
    isolated_home(mp, home)
    last = write_toy_lake(home)
    settings = make_tiny(load_settings())
    settings.scoring.k = K
    settings.refresh.rerank = "on"
    settings.clean.max_bad_share = 0.6  # the toy file is a third bad lines (more than half before 09:01)
    train_champion(settings, last)
    score.run(settings, last)
    today = last + dt.timedelta(days=1)
    write_raw(home, "events", today, [
        # u1 (whatever its topic) rates two Space items, u_new (unknown until today) three Cooking items.
        _rate("u1", "i0", 5, "08:01:00", today), _rate("u1", "i4", 5, "08:03:00", today),
        _rate("u_new", "i1", 5, "09:00:00", today), _rate("u_new", "i5", 4, "09:02:00", today), _rate("u_new", "i9", 5, "09:04:00", today),
        _rate("u2", "i_unknown", 5, "09:30:00", today),            # an item the catalogue of D-1 does not know
        _rate("u3", "i3", 4, "00:00:01", today, event_id="e3-0"),  # a copy of an event the lake already holds
        _rate("u1", "i4", 5, "08:03:00", today),                   # resent: a duplicate
        _rate("u2", "i2", 5, "13:00:00", today),                   # after the replay's --until
        *BAD,
    ])
    yield home, settings, last, today, spark
    mp.undo()


def _view(home) -> dict[str, list[dict]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT * FROM user_recommendations_current ORDER BY user_id, rank").to_arrow_table().to_pylist()
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["user_id"], []).append(r)
    return out


def _fresh(home) -> list[dict]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql("SELECT * EXCLUDE (refreshed_at, run_id) FROM user_recommendations_fresh ORDER BY user_id, rank").to_arrow_table().to_pylist()


def test_refresh_reranks_todays_users_and_the_view_prefers_their_fresh_rows(world):
    home, settings, last, today, spark = world
    out = refresh.run(settings, today, spark=spark)
    assert out["lines"] == {"read": 15, "clean": 8, "quarantined": 6, "duplicates": 1, "later": 0} and out["reranked"]
    assert out["behaviours"] == {"fresh": 6, "already_in_lake": 1, "unknown_item": 1, "new_users": 1, "users": 3}
    view = _view(home)
    fresh_users = {u for u, rows in view.items() if rows[0]["refreshed_at"] is not None}
    assert fresh_users == {"u1", "u2", "u_new"}
    assert all(len(rows) == K and rows[0]["ds"] == last for u, rows in view.items() if u not in fresh_users)
    for user, seen_today in (("u1", {"i0", "i4"}), ("u_new", {"i1", "i5", "i9"}), ("u2", {"i2"})):
        rows = view[user]
        assert [r["rank"] for r in rows] == list(range(1, K + 1)) and rows[0]["ds"] == today
        assert not {r["item_id"] for r in rows} & seen_today
        assert rows[0]["fresh_events"] == {"u1": 2, "u_new": 3, "u2": 1}[user]
    # u_new had nothing before today: its list comes from today's Cooking ratings, and says so.
    assert any(r["reason"].startswith("Because you just rated Kitchen") and r["reason"].endswith("stars") for r in view["u_new"])
    assert view["u_new"][0]["source"] == "model"
    # u1's list was ranked again from its extended history, not copied from the nightly one.
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        nightly = con.sql("SELECT item_id, score FROM user_recommendations_latest WHERE user_id = 'u1' ORDER BY rank").fetchall()
    assert [(r["item_id"], r["score"]) for r in view["u1"]] != nightly
    # A rerun over the same files gives the same rows.
    first = _fresh(home)
    refresh.run(settings, today, spark=spark)
    assert _fresh(home) == first


def test_bad_lines_are_quarantined_as_the_nightly_clean_does(world, tmp_path):
    import pyarrow.parquet as pq

    home, settings, last, today, spark = world
    refresh.run(settings, today, spark=spark)
    intraday = pq.read_table(lake.partition(settings.lake_dir / "intraday" / "quarantine", today))
    nightly_home = tmp_path / "nightly"
    nightly = settings.model_copy(update={"home": nightly_home})
    write_raw(nightly_home, "events", today, [])
    for f in lake.raw_files(settings.raw_table("events"), today):
        (nightly_home / "raw" / "events" / f"ds={today}" / f.name).write_bytes(f.read_bytes())
    [summary] = clean_logs.clean_source(spark, nightly, clean_logs.SOURCES[0], [today])
    nightly_q = pq.read_table(lake.partition(nightly.lake_table("quarantine"), today) / "source=events")
    assert sorted(intraday["reason"].to_pylist()) == sorted(nightly_q["reason"].to_pylist())
    assert sorted(intraday["raw_line"].to_pylist()) == sorted(nightly_q["raw_line"].to_pylist())
    assert (summary.read, summary.quarantined, summary.duplicates) == (15, 6, 1)
    # Above the nightly's bad-share threshold the refresh publishes nothing, as the nightly clean would.
    before = _fresh(home)
    strict = settings.model_copy(update={"clean": settings.clean.model_copy(update={"max_bad_share": 0.05})})
    with pytest.raises(DataQualityError, match="6 of 15 lines invalid"):
        refresh.run(strict, today, spark=spark)
    assert _fresh(home) == before


def test_a_later_file_supersedes_and_until_replays_the_past(world, capsys):
    from llmrec_core import cli

    home, settings, last, today, spark = world
    version = refresh.run(settings, today, spark=spark)["model_version"]
    assert refresh_pending(today, version, settings).startswith("nothing new since")
    assert cli.main(["refresh", "--ds", str(today), "--if-changed"]) == 0
    assert capsys.readouterr().out.startswith("skipped: nothing new since the refresh at")
    write_raw(home, "events", today, [_rate("u4", "i2", 5, "10:00:00", today), _rate("u4", "i6", 5, "10:01:00", today)], name="part-1.jsonl")
    assert refresh_pending(today, version, settings) is None
    out = refresh.run(settings, today, spark=spark)
    assert out["behaviours"]["users"] == 4 and out["files"] == 2
    assert {u for u, rows in _view(home).items() if rows[0]["refreshed_at"] is not None} == {"u1", "u2", "u4", "u_new"}
    # Replaying the morning: only what happened before 09:01.
    out = refresh.run(settings, today, until=f"{today}T09:01:00Z", spark=spark)
    assert out["lines"]["later"] == 6 and out["behaviours"]["users"] == 2
    assert {u for u, rows in _view(home).items() if rows[0]["refreshed_at"] is not None} == {"u1", "u_new"}
    from llmrec_stack.report import refresh_line, summary

    line = refresh_line(settings, last)
    assert "every 15 min" in line and f"last refresh: {today} at" in line and ", 2 users," in line and f"llmrec refresh --ds {today}" in line
    assert line in summary(settings, last)  # what `llmrec pipeline` prints
    with pytest.raises(LlmrecError, match="not within the day"):
        refresh.run(settings, today, until=f"{last}T09:01:00Z", spark=spark)


def test_a_version_the_gate_refused_refreshes_only_when_forced(world, capsys):
    """As ``llmrec score``: a champion alias moved by hand onto a refused version is no promotion,
    and refreshing with it needs ``--force``, which the run record and the summary carry."""
    from mlflow import MlflowClient

    from llmrec_core.io import tracking

    home, settings, last, today, spark = world
    name, champion = settings.tracking.registered_model, tracking.champion(settings)
    decision = champion.tags["promotion"]
    MlflowClient().set_model_version_tag(name, champion.version, "promotion", "not promoted: moved here by hand")
    try:
        assert refresh.main(["--ds", str(today)]) == 1
        err = capsys.readouterr().err
        assert f"version {champion.version} was not promoted by the gate (moved here by hand)" in err
        assert "--force" in err and "Traceback" not in err
        out = refresh.run(settings, today, spark=spark, force=True, forced_by="alice")
        assert (out["forced"], out["forced_by"], out["forced_reason"]) == ("true", "alice", "moved here by hand")
        assert "FORCED by alice: the gate did not promote this version (moved here by hand)" in refresh.summary(out)
        record = json.loads(lake.run_summary_path(settings.runs_dir, refresh.JOB, today).read_text())
        assert record["forced_by"] == "alice" and record["model_version"] == str(champion.version)
    finally:
        MlflowClient().set_model_version_tag(name, champion.version, "promotion", decision)
    assert "forced" not in refresh.run(settings, today, spark=spark)
