"""Catalogue and user-profile cleaning on inline rows."""

from __future__ import annotations

import pytest

from llmrec_core.etl import catalog, schemas
from tests.conftest import raw_frame

DS = "2024-01-01"
ITEM_COLUMNS = tuple(schemas.CLEAN_ITEMS.fieldNames())


def item(**over):
    row = {"item_id": "i1", "title": "Toy Story (1995)", "categories": ["Animation", "Comedy"],
           "attributes": {"release_year": 1995, "studio": "Pixar"}}
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


@pytest.fixture(scope="module")
def items(spark):
    lines = [
        item(),
        item(item_id="i2", title="  Heat\u0007 (1995) ", description="A\u0000 heist.", categories=..., attributes=...),
        item(item_id="i3", available=False),
        item(item_id="bad1", title=...),
        item(item_id="bad2", title=""),
        item(item_id="bad3", title=7),
        item(item_id="bad4", categories="Comedy"),
        item(item_id="bad5", categories=[1, 2]),
        item(item_id="bad6", attributes={"nested": {"a": 1}}),
        item(item_id="bad7", available="yes"),
        item(item_id="bad8", description=["x"]),
        item(item_id=12),
        '{"title": "no id"}',
        item(item_id="i1", title="A second row for i1"),
    ]
    parsed = catalog.parse_items(raw_frame(spark, DS, lines), max_id_length=64, max_text_length=100)
    split = catalog.split_snapshot(parsed, "item_id", ITEM_COLUMNS)
    return {
        "reasons": [r["reason"] for r in parsed.collect()],
        "clean": {r["item_id"]: r.asDict() for r in split.clean.collect()},
        "quarantined": split.quarantine.count(),
        "duplicates": sum(r["count"] for r in split.duplicates.collect()),
    }


def test_item_reasons(items):
    assert items["reasons"] == [
        None, None, None, "missing_title", "missing_title", "bad_type_title", "bad_categories",
        "bad_categories", "bad_attributes", "bad_available", "bad_type_description", "bad_type_item_id",
        "missing_item_id", None,
    ]


def test_item_fields_are_normalised(items):
    toy, heat, gone = items["clean"]["i1"], items["clean"]["i2"], items["clean"]["i3"]
    assert toy["categories"] == ["Animation", "Comedy"]
    assert toy["attributes"] == {"release_year": "1995", "studio": "Pixar"}
    assert toy["available"] is True
    assert heat["title"] == "Heat (1995)" and heat["description"] == "A heist."
    assert heat["categories"] == [] and heat["attributes"] == {}
    assert gone["available"] is False


def test_duplicate_item_rows_keep_one(items):
    assert set(items["clean"]) == {"i1", "i2", "i3"}
    # The first by raw line wins; the rerun picks the same one.
    assert items["clean"]["i1"]["title"] in {"Toy Story (1995)", "A second row for i1"}
    assert items["duplicates"] == 1 and items["quarantined"] == 10
    assert len(items["clean"]) + items["quarantined"] + items["duplicates"] == 14


def test_users(spark):
    lines = [
        {"user_id": "u1", "attributes": {"age": 24, "gender": "M"}},
        {"user_id": "u2"},
        {"user_id": "u3", "attributes": [1]},
        {"user_id": ""},
        "nope",
    ]
    parsed = catalog.parse_users(raw_frame(spark, DS, lines), max_id_length=64)
    rows = parsed.collect()
    assert [r["reason"] for r in rows] == [None, None, "bad_attributes", "missing_user_id", "not_json"]
    assert rows[0]["attributes"] == {"age": "24", "gender": "M"} and rows[1]["attributes"] == {}
