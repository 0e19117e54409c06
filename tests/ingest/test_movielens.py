"""MovieLens ingest from each GroupLens format into raw partitions (no Spark needed)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from llmrec_core.errors import MissingInputError
from llmrec_core.ingest.movielens import ingest_movielens

# 1997-09-20 05:05:40 UTC, 1997-09-22 ... and 1997-09-23 23:59:59 UTC
T1, T2, T3 = 874731940, 874904740, 875059199


def read_partitions(raw: Path, table: str) -> dict[str, list[dict]]:
    out = {}
    for part in sorted((raw / table).iterdir()):
        rows = []
        for f in sorted(part.glob("*.jsonl")):
            rows += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
        assert (part / "_SUCCESS").exists()
        out[part.name.removeprefix("ds=")] = rows
    return out


def grouplens_100k(d: Path) -> Path:
    d.mkdir()
    (d / "u.data").write_text(f"1\t10\t5\t{T2}\n2\t10\t3\t{T1}\n1\t20\t4\t{T3}\n", encoding="latin-1")
    flags = ["0"] * 19
    flags[1] = flags[16] = "1"
    (d / "u.item").write_text(
        f"10|Heat (1995)|15-Dec-1995||http://x|{'|'.join(flags)}\n"
        f"20|Misérables, Les (1995)|01-Jan-1995||http://y|{'|'.join(['0'] * 8 + ['1'] + ['0'] * 10)}\n"
        f"30|Nobody Rated Me (1990)|unknown||http://z|{'|'.join(['1'] + ['0'] * 18)}\n",
        encoding="latin-1",
    )
    (d / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n", encoding="latin-1")
    return d


def test_grouplens_100k(tmp_path):
    raw = tmp_path / "raw"
    result = ingest_movielens(raw, grouplens_100k(tmp_path / "ml-100k"))
    assert result["events"] == 3 and result["items"] == 3 and result["users"] == 2
    events = read_partitions(raw, "events")
    # Every day of the span exists, rated or not; ratings land in their UTC day.
    assert list(events) == ["1997-09-20", "1997-09-21", "1997-09-22", "1997-09-23"]
    assert events["1997-09-21"] == []
    assert events["1997-09-20"] == [{"user_id": "2", "item_id": "10", "event_type": "rate", "value": 3, "ts": T1}]
    assert events["1997-09-23"][0]["ts"] == T3
    items = read_partitions(raw, "items")
    assert list(items) == ["1997-09-20"]  # dated on the first day: unrated items exist from the start
    heat, mis, nobody = items["1997-09-20"]
    assert heat == {"item_id": "10", "title": "Heat (1995)", "categories": ["Action", "Thriller"],
                    "attributes": {"release_date": "1995-12-15"}}
    assert mis["title"] == "Misérables, Les (1995)" and mis["categories"] == ["Drama"]
    assert nobody["attributes"] == {} and nobody["categories"] == ["unknown"]
    users = read_partitions(raw, "users")
    # Each user dated on their first event's day; no zip code unless asked for.
    assert users == {
        "1997-09-20": [{"user_id": "2", "attributes": {"age": 53, "gender": "F", "occupation": "other"}}],
        "1997-09-22": [{"user_id": "1", "attributes": {"age": 24, "gender": "M", "occupation": "technician"}}],
    }


def test_zip_codes_only_on_request(tmp_path):
    ingest_movielens(tmp_path / "raw", grouplens_100k(tmp_path / "ml"), include_zip=True)
    users = read_partitions(tmp_path / "raw", "users")
    assert users["1997-09-22"][0]["attributes"]["zip_code"] == "85711"


def test_grouplens_1m_zip(tmp_path):
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ml-1m/ratings.dat", f"1::1193::5::{T1}\n1::661::3::{T2}\n")
        z.writestr("ml-1m/movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n")
        z.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")
    raw = tmp_path / "raw"
    result = ingest_movielens(raw, archive)
    assert result["events"] == 2
    item = read_partitions(raw, "items")["1997-09-20"][1]
    assert item == {"item_id": "661", "title": "James and the Giant Peach (1996)",
                    "categories": ["Animation", "Children's", "Musical"], "attributes": {"release_year": 1996}}
    user = read_partitions(raw, "users")["1997-09-20"][0]
    assert user["attributes"] == {"age": 1, "gender": "F", "occupation": "K-12 student"}


def test_grouplens_csv_half_stars(tmp_path):
    d = tmp_path / "ml-latest-small"
    d.mkdir()
    (d / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n1,1,4.0,{T1}\n1,2,3.5,{T2}\n")
    (d / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,"American President, The (1995)",(no genres listed)\n')
    raw = tmp_path / "raw"
    ingest_movielens(raw, d)
    events = read_partitions(raw, "events")
    assert [e["value"] for day in events.values() for e in day] == [4, 3.5]
    items = read_partitions(raw, "items")["1997-09-20"]
    assert items[1]["title"] == "American President, The (1995)" and items[1]["categories"] == []
    assert read_partitions(raw, "users")["1997-09-20"] == [{"user_id": "1", "attributes": {}}]


def test_reingest_replaces_partitions(tmp_path):
    raw = tmp_path / "raw"
    src = grouplens_100k(tmp_path / "ml")
    ingest_movielens(raw, src)
    ingest_movielens(raw, src)
    assert sum(len(v) for v in read_partitions(raw, "events").values()) == 3
    assert not [p for p in raw.iterdir() if p.name.startswith("_staging")]


def test_unrecognised_source_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="no MovieLens files recognised"):
        ingest_movielens(tmp_path / "raw", tmp_path / "empty")
