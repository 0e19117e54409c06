"""Explicit schemas of the lake tables and the quarantine reason codes."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

SOURCES = ("events", "items", "users")

# What the extract step hands to the transforms: one row per raw line.
RAW_LINES = StructType(
    [
        StructField("ds", DateType(), False),
        StructField("source_file", StringType(), False),
        StructField("line", StringType(), True),
    ]
)

CLEAN_EVENTS = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("event_type", StringType(), False),
        StructField("value", DoubleType(), True),
        StructField("ts", TimestampType(), False),
        StructField("ds", DateType(), False),
    ]
)

CLEAN_ITEMS = StructType(
    [
        StructField("item_id", StringType(), False),
        StructField("title", StringType(), False),
        StructField("description", StringType(), True),
        StructField("categories", ArrayType(StringType()), False),
        StructField("attributes", MapType(StringType(), StringType()), False),
        StructField("available", BooleanType(), False),
        StructField("ds", DateType(), False),
    ]
)

CLEAN_USERS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("attributes", MapType(StringType(), StringType()), False),
        StructField("ds", DateType(), False),
    ]
)

QUARANTINE = StructType(
    [
        StructField("reason", StringType(), False),
        StructField("raw_line", StringType(), True),
        StructField("source_file", StringType(), False),
        StructField("ds", DateType(), False),
        StructField("source", StringType(), False),
    ]
)

SEQUENCES = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("item_ids", ArrayType(StringType()), False),
        StructField("event_types", ArrayType(StringType()), False),
        StructField("values", ArrayType(DoubleType()), False),
        StructField("ts", ArrayType(TimestampType()), False),
        StructField("n_events", LongType(), False),
        StructField("last_ts", TimestampType(), False),
        StructField("ds", DateType(), False),
    ]
)

# Reason codes. A row gets the first that applies, in the order the checks run.
REASONS: dict[str, str] = {
    "line_too_long": "the line has clean.max_line_bytes bytes or more (raw_line keeps its first KiB)",
    "invalid_utf8": "the line is not valid UTF-8",
    "blank_line": "the line is empty or whitespace",
    "not_json": "the line is not parseable JSON",
    "not_object": "the JSON value is not an object",
    "bad_type_event_id": "event_id is present but not a string",
    "control_chars_event_id": "event_id contains control, invisible formatting (bidi override, zero-width) or unpaired surrogate characters",
    "not_nfc_event_id": "event_id holds combining accents (decomposed, NFD): the twin of its composed form",
    "too_long_event_id": "event_id exceeds the length cap",
    "missing_user_id": "user_id absent, null or empty",
    "bad_type_user_id": "user_id is not a string",
    "control_chars_user_id": "user_id contains control, invisible formatting (bidi override, zero-width) or unpaired surrogate characters",
    "not_nfc_user_id": "user_id holds combining accents (decomposed, NFD): the twin of its composed form",
    "too_long_user_id": "user_id exceeds the length cap",
    "missing_item_id": "item_id absent, null or empty",
    "bad_type_item_id": "item_id is not a string",
    "control_chars_item_id": "item_id contains control, invisible formatting (bidi override, zero-width) or unpaired surrogate characters",
    "not_nfc_item_id": "item_id holds combining accents (decomposed, NFD): the twin of its composed form",
    "too_long_item_id": "item_id exceeds the length cap",
    "missing_event_type": "event_type absent, null or empty",
    "unknown_event_type": "event_type is not a string or not a configured type",
    "missing_rating": "a rating event without a value",
    "rating_not_numeric": "a rating value that is not a number",
    "rating_out_of_range": "a rating value outside the configured range",
    "value_not_numeric": "value present but not a number",
    "missing_ts": "ts absent or null",
    "ts_no_offset": "ts is an ISO-8601 string without a UTC offset",
    "ts_unparsable": "ts is not ISO-8601 with offset or epoch seconds, or names an impossible time",
    "ts_before_1970": "ts before 1970-01-01",
    "ts_in_future": "ts after the end of its partition's day (plus tolerance) or after now",
    "bot_user": "the user exceeded the configured events per minute that day",
    "missing_title": "catalogue row without a title",
    "bad_type_title": "title is not a string",
    "bad_type_description": "description is present but not a string",
    "bad_categories": "categories is present but not a list of strings",
    "bad_attributes": "attributes is present but not an object of strings and numbers",
    "bad_available": "available is present but not a boolean",
}
