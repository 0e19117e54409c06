"""MovieLens-100K from the downloaded RecBole wheel file through ingest and the whole ETL backfill."""

from __future__ import annotations

import datetime as dt

import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest

from llmrec_core import cli

LAST_DAY = "1998-04-22"


@pytest.mark.slow
def test_movielens_100k_ingest_and_etl(spark, home, capsys):
    assert cli.main(["ingest", "movielens-100k"]) == 0
    assert cli.main(["etl", "--all"]) == 0
    printed = capsys.readouterr().out
    assert "events read=  100,000 clean=  100,000 quarantined=      0 duplicates=      0  reconciled=yes" in printed

    lake = home / "lake"
    events = pads.dataset(lake / "clean_events", partitioning="hive").to_table()
    assert events.num_rows == 100_000
    assert pc.count_distinct(events["user_id"]).as_py() == 943
    assert pc.count_distinct(events["item_id"]).as_py() == 1682
    assert set(pc.unique(events["event_type"]).to_pylist()) == {"rate"}
    first = events.filter((pc.field("user_id") == "196") & (pc.field("item_id") == "242")).to_pylist()
    assert first[0]["value"] == 3.0
    assert first[0]["ts"] == dt.datetime.fromtimestamp(881250949, dt.timezone.utc)
    assert not (lake / "quarantine").exists() or pads.dataset(lake / "quarantine").count_rows() == 0

    items = pads.dataset(lake / "items" / f"ds={LAST_DAY}").to_table()
    users = pads.dataset(lake / "users" / f"ds={LAST_DAY}").to_table()
    sequences = pads.dataset(lake / "sequences" / f"ds={LAST_DAY}").to_table()
    assert items.num_rows == 1682 and pc.all(items["in_catalogue"]).as_py()
    assert users.num_rows == 943 and sequences.num_rows == 943
    toy = items.filter(pc.field("item_id") == "1").to_pylist()[0]
    assert toy["title"] == "Toy Story (1995)" and toy["categories"] == ["Animation", "Children's", "Comedy"]
    assert sum(pc.list_value_length(sequences["item_ids"]).to_pylist()) == 943 * 50 - sum(
        max(0, 50 - n) for n in sequences["n_events"].to_pylist()
    )
    assert sum(sequences["n_events"].to_pylist()) == 100_000
