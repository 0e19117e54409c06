"""The cleaning and sequence jobs end to end over files in a throwaway LLMREC_HOME."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.dataset as pads
import pytest

from jobs import build_sequences, clean_logs, etl
from llmrec_core import cli
from llmrec_core.errors import DataQualityError, LlmrecError, MissingInputError
from tests.conftest import write_raw

D1, D2, D3 = "2024-01-01", "2024-01-02", "2024-01-03"


def ev(user, item, ts, **extra):
    return {"user_id": user, "item_id": item, "event_type": extra.pop("event_type", "click"), "ts": ts, **extra}


def seed_day(home, ds, *, bad=(), n_good=40):
    day = dt.date.fromisoformat(ds)
    good = [ev(f"u{k % 7}", f"i{k % 11}", f"{ds}T{k % 24:02d}:{k % 60:02d}:00Z", event_id=f"{ds}-{k}") for k in range(n_good)]
    write_raw(home, "events", ds, good[:20], name="a.jsonl")
    write_raw(home, "events", ds, good[20:30], name="b.jsonl", gz=True)
    write_raw(home, "events", ds, good[30:], name="c.jsonl", newline=b"\r\n")
    write_raw(home, "events", ds, list(bad), name="d.jsonl")
    write_raw(home, "events", ds, ["ignored: not a .jsonl file"], name="notes.txt")
    write_raw(home, "items", ds, [{"item_id": f"i{k}", "title": f"Item {k} ({2000 + k})"} for k in range(11)])
    write_raw(home, "users", ds, [{"user_id": f"u{k}", "attributes": {"plan": "free"}} for k in range(7)])
    return day


def table(home, name):
    path = home / "lake" / name
    return pads.dataset(path, partitioning="hive").to_table().to_pylist() if path.exists() else []


def summary(home, source, ds):
    return json.loads((home / "lake" / "_runs" / "clean_logs" / source / f"ds={ds}.json").read_text())


BAD = [
    b'{"user_id": "u\xff1", "item_id": "i1", "event_type": "click", "ts": 1704067200}',
    b'{"user_id": "u1", "item_id": "i1", "event_type": "click"',
]


def test_clean_day_from_gzip_crlf_and_bad_bytes(spark, home):
    seed_day(home, D1, bad=BAD)
    clean_logs.main(["--ds", D1])
    clean = table(home, "clean_events")
    assert len(clean) == 40 and {r["event_id"] for r in clean} == {f"{D1}-{k}" for k in range(40)}
    assert all(r["ds"] == D1 for r in clean)
    quarantine = table(home, "quarantine")
    assert sorted(r["reason"] for r in quarantine) == ["invalid_utf8", "not_json"]
    utf8 = next(r for r in quarantine if r["reason"] == "invalid_utf8")
    assert "\ufffd" in utf8["raw_line"] and utf8["source_file"].endswith("d.jsonl") and utf8["source"] == "events"
    s = summary(home, "events", D1)
    assert (s["read"], s["clean"], s["quarantined"], s["duplicates"]) == (42, 40, 2, 0)
    assert s["reconciled"] and s["passed"]
    assert len(table(home, "clean_items")) == 11 and len(table(home, "clean_users")) == 7


def test_rerun_replaces_the_day_exactly(spark, home):
    seed_day(home, D1, bad=BAD)
    clean_logs.main(["--ds", D1])
    first = sorted(map(str, table(home, "clean_events"))), sorted(map(str, table(home, "quarantine")))
    clean_logs.main(["--ds", D1])
    assert (sorted(map(str, table(home, "clean_events"))), sorted(map(str, table(home, "quarantine")))) == first
    # The raw day changes (a file withdrawn): the rerun reflects it, nothing stale survives.
    (home / "raw" / "events" / f"ds={D1}" / "d.jsonl").unlink()
    clean_logs.main(["--ds", D1])
    assert table(home, "quarantine") == [] and len(table(home, "clean_events")) == 40


def test_bad_share_over_threshold_fails_only_that_day(spark, home):
    seed_day(home, D1)
    seed_day(home, D2, bad=["garbage"] * 10)  # 10 of 50 rows: 20% > 5%
    with pytest.raises(DataQualityError) as err:
        clean_logs.main(["--start", D1, "--end", D2])
    assert f"raw/events/ds={D2}" in str(err.value) and "10 of 50" in str(err.value)
    clean = table(home, "clean_events")
    assert {r["ds"] for r in clean} == {D1}  # the good day is published, the bad one is not
    assert len([r for r in table(home, "quarantine") if r["ds"] == D2]) == 10  # there to inspect
    assert summary(home, "events", D2)["passed"] is False


def test_sequences_refuse_days_never_cleaned(spark, home):
    seed_day(home, D1)
    seed_day(home, D2)
    clean_logs.main(["--ds", D2])
    with pytest.raises(MissingInputError, match=f"first: {D1}"):
        build_sequences.main(["--ds", D2])


def test_backfill_range_equals_day_by_day(spark, home, tmp_path, monkeypatch):
    for ds in (D1, D2, D3):
        seed_day(home, ds)
    etl.main(["--start", D1, "--end", D3])
    ranged = {name: sorted(map(str, table(home, name))) for name in ("clean_events", "sequences", "items", "users")}
    assert {r["ds"] for r in table(home, "sequences")} == {D1, D2, D3}
    assert len([r for r in table(home, "sequences") if r["ds"] == D3]) == 7

    other = tmp_path / "other"
    (other / "raw").mkdir(parents=True)
    import shutil

    shutil.copytree(home / "raw", other / "raw", dirs_exist_ok=True)
    monkeypatch.setenv("LLMREC_HOME", str(other))
    for ds in (D1, D2, D3):
        etl.main(["--ds", ds])
    daily = {name: sorted(map(str, table(other, name))) for name in ranged}
    assert daily == ranged


def test_cli_reports_errors_without_traceback(spark, home, capsys):
    assert cli.main(["etl", "--ds", "2001-01-01"]) == 1
    err = capsys.readouterr().err
    assert "error: raw partition not found" in err and "Traceback" not in err
    (home / "llmrec.yaml").write_text("clean:\n  max_bad_shares: 0.1\n")
    assert cli.main(["config"]) == 1
    assert "unknown setting 'clean.max_bad_shares'" in capsys.readouterr().err


def test_counts_that_do_not_reconcile_publish_nothing(spark, home, monkeypatch):
    seed_day(home, D1, bad=BAD)
    clean_logs.main(["--ds", D1])
    before = sorted(map(str, table(home, "clean_events"))), sorted(map(str, table(home, "quarantine")))
    write_raw(home, "events", D1, [ev("u9", "i9", f"{D1}T05:00:00Z")], name="e.jsonl")

    def lose_a_row(source, days, read_counts, status_counts, share):
        read_counts = {ds: n + 1 for ds, n in read_counts.items()}  # as if a line went missing
        return real_summarize(source, days, read_counts, status_counts, share)

    real_summarize = clean_logs.reconcile.summarize
    monkeypatch.setattr(clean_logs.reconcile, "summarize", lose_a_row)
    with pytest.raises(LlmrecError, match="counts do not reconcile"):
        clean_logs.main(["--ds", D1])
    after = sorted(map(str, table(home, "clean_events"))), sorted(map(str, table(home, "quarantine")))
    assert after == before  # the new line is not published, the old day is intact
