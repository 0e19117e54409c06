"""The serving tables' columns (docs/data-contract.md, "Serving tables"), as Arrow schemas.

The scoring job builds these tables; the warehouse creates, stages and publishes them with
exactly these columns, in this order.
"""

from __future__ import annotations

import pyarrow as pa

USER_RECOMMENDATIONS = pa.schema([
    ("ds", pa.date32()), ("user_id", pa.string()), ("rank", pa.int32()), ("item_id", pa.string()),
    ("score", pa.float64()), ("reason", pa.string()), ("source", pa.string()), ("model_name", pa.string()),
    ("model_version", pa.string()), ("run_id", pa.string()),
])
ITEM_RECOMMENDATIONS = pa.schema([
    ("ds", pa.date32()), ("item_id", pa.string()), ("rank", pa.int32()), ("rec_item_id", pa.string()),
    ("score", pa.float64()), ("model_version", pa.string()),
])
ITEM_AUDIENCE = pa.schema([
    ("ds", pa.date32()), ("item_id", pa.string()), ("rank", pa.int32()), ("user_id", pa.string()),
    ("score", pa.float64()), ("model_version", pa.string()),
])
SCHEMAS = {
    "user_recommendations": USER_RECOMMENDATIONS,
    "item_recommendations": ITEM_RECOMMENDATIONS,
    "item_audience": ITEM_AUDIENCE,
}
# The intraday refresh's rows: the nightly user columns, when they were refreshed and from how
# many of the day's behaviours. Not part of a nightly publish (``SCHEMAS``); see ``ALL_SCHEMAS``.
FRESH = "user_recommendations_fresh"
USER_RECOMMENDATIONS_FRESH = pa.schema([*USER_RECOMMENDATIONS, ("refreshed_at", pa.timestamp("us", tz="UTC")),
                                        ("fresh_events", pa.int32())])
ALL_SCHEMAS = {**SCHEMAS, FRESH: USER_RECOMMENDATIONS_FRESH}
# The key of each table: (ds, KEY[0], rank) and (ds, KEY[0], KEY[1]) are unique.
KEYS = {
    "user_recommendations": ("user_id", "item_id"),
    "item_recommendations": ("item_id", "rec_item_id"),
    "item_audience": ("item_id", "user_id"),
    FRESH: ("user_id", "item_id"),
}
SOURCES = ("model", "cold_text", "popularity_fallback")
# How a user is scored, an index into SOURCES: from history, from profile text only, from nothing.
MODEL, COLD_TEXT, POPULAR = 0, 1, 2
