"""Clean raw catalogue (items) and user-profile snapshot lines.

Same contract as the events cleaner: every row ends up clean, quarantined with a reason, or
counted as a duplicate (a second row for the same id in one partition; the row kept is the first
by raw line, then file, so reruns agree). Snapshots are small, so a window does the dedupe.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from llmrec_core.etl import jsonfields as J
from llmrec_core.etl.clean import Split

_CONTROL = J.CONTROL_CHARS


def _text(field: str, max_len: int) -> Column:
    """A free-text field with control characters replaced by spaces, trimmed and capped."""
    text = F.regexp_replace(J.s(field), _CONTROL, " ")
    return F.substring(F.trim(F.regexp_replace(text, r"\s+", " ")), 1, max_len)


def _attributes() -> tuple[Column, list[tuple[Column, str]]]:
    typ = J.t("attributes")
    # Flat object of scalars only: no nested object or array after the outer OBJECT<.
    inner = F.substring(typ, 8, 1_000_000)
    flat = typ.startswith("OBJECT<") & ~inner.contains("OBJECT<") & ~inner.contains("ARRAY<")
    value = F.coalesce(F.col("attributes__m"), F.create_map().cast("map<string,string>"))
    value = F.map_filter(value, lambda k, x: x.isNotNull())
    return value, [(~J.is_absent(typ) & ~flat, "bad_attributes")]


_ATTRS = {"attributes__m": ("attributes", "map<string,string>", "OBJECT<")}


def parse_items(raw: DataFrame, *, max_id_length: int, max_text_length: int) -> DataFrame:
    """Raw catalogue lines -> typed item rows with a ``reason`` (NULL when valid)."""
    fields = ["item_id", "title", "description", "categories", "available", "attributes"]
    typed = {
        **_ATTRS,
        "categories__a": ("categories", "array<string>", "ARRAY<STRING>"),
        "available__b": ("available", "boolean", "BOOLEAN"),
    }
    df = J.parse_fields(raw, fields, typed)
    title_t, desc_t, cats_t, avail_t = J.t("title"), J.t("description"), J.t("categories"), J.t("available")
    title = _text("title", max_text_length)
    attrs, attr_checks = _attributes()
    cats = F.coalesce(F.col("categories__a"), F.array().cast("array<string>"))
    cats = F.filter(
        F.transform(cats, lambda c: F.trim(F.regexp_replace(c, _CONTROL, " "))), lambda c: c.isNotNull() & (c != "")
    )
    checks = J.line_checks() + J.id_checks(["item_id"], max_id_length) + [
        (J.is_absent(title_t), "missing_title"),
        (title_t != "STRING", "bad_type_title"),
        (title == "", "missing_title"),
        (~J.is_absent(desc_t) & (desc_t != "STRING"), "bad_type_description"),
        (~J.is_absent(cats_t) & ~cats_t.isin("ARRAY<STRING>", "ARRAY<VOID>"), "bad_categories"),
        (~J.is_absent(avail_t) & (avail_t != "BOOLEAN"), "bad_available"),
    ] + attr_checks
    return J.finish(
        df,
        checks,
        J.s("item_id").alias("item_id"),
        title.alias("title"),
        F.nullif(_text("description", max_text_length), F.lit("")).alias("description"),
        cats.alias("categories"),
        attrs.alias("attributes"),
        F.coalesce(F.col("available__b"), F.lit(True)).alias("available"),
    )


def parse_users(raw: DataFrame, *, max_id_length: int) -> DataFrame:
    """Raw user-profile lines -> typed user rows with a ``reason`` (NULL when valid)."""
    df = J.parse_fields(raw, ["user_id", "attributes"], _ATTRS)
    attrs, attr_checks = _attributes()
    checks = J.line_checks() + J.id_checks(["user_id"], max_id_length) + attr_checks
    return df.select(
        "ds",
        "source_file",
        J.valid_text(F.col("line"), F.col("_utf8")).alias("raw_line"),
        J.first_reason(checks).alias("reason"),
        J.s("user_id").alias("user_id"),
        attrs.alias("attributes"),
    )


def split_snapshot(parsed: DataFrame, id_field: str, columns: tuple[str, ...]) -> Split:
    """Clean rows (first row per id and day), quarantine (invalid rows) and duplicates."""
    valid = F.col("reason").isNull()
    key = F.when(valid, F.col(id_field)).otherwise(F.concat(F.lit("!"), F.xxhash64("raw_line", "source_file").cast("string")))
    ranked = parsed.withColumn("_rank", F.row_number().over(Window.partitionBy("ds", key).orderBy("raw_line", "source_file")))
    return Split(
        parsed=parsed,
        clean=ranked.where(valid & (F.col("_rank") == 1)).select(*columns),
        quarantine=ranked.where(~valid).select("reason", "raw_line", "source_file", "ds"),
        duplicates=ranked.where(valid & (F.col("_rank") > 1)).groupBy("ds").count(),
    )
