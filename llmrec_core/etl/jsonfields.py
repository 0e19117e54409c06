"""Typed access to the fields of one raw JSON line, shared by the events, items and users cleaners.

Lines are parsed once into a Variant; each field keeps its JSON type, so ``"user_id": 12`` is
told apart from ``"user_id": "12"`` (a plain ``from_json`` would coerce the number to text).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

NUMERIC_TYPES = ("BIGINT", "INT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT")
# C0 and C1 control characters (tab and newline included: an id has no business holding them).
CONTROL_CHARS = r"[\x00-\x1f\x7f-\x9f]"


def bom_stripped(line: Column) -> Column:
    return F.when(line.startswith("\ufeff"), F.substring(line, 2, 1 << 30)).otherwise(line)


def parse_line(line: Column) -> Column:
    """Variant of the line, or NULL when it is not JSON."""
    return F.try_parse_json(bom_stripped(line))


def valid_text(line: Column, utf8_ok: Column) -> Column:
    """The line as valid UTF-8 (invalid bytes replaced), repairing only lines that need it."""
    return F.when(utf8_ok, line).otherwise(F.make_valid_utf8(line))


def jtype(v: Column, field: str) -> Column:
    """JSON type of a field: 'STRING', 'BIGINT', 'DECIMAL(p,s)', 'VOID' (null), ... or NULL if absent."""
    return F.schema_of_variant(F.variant_get(v, f"$.{field}", "variant"))


def jstring(v: Column, field: str) -> Column:
    return F.try_variant_get(v, f"$.{field}", "string")


def extract(v: Column, fields: list[str]) -> list[Column]:
    """Each field's JSON type and string value as columns ``<field>__t`` and ``<field>__s``.

    Select these once, then write checks against ``t(field)``/``s(field)``: each variant lookup
    then runs once per row instead of once per check that mentions it.
    """
    cols = []
    for f in fields:
        cols += [jtype(v, f).alias(f"{f}__t"), jstring(v, f).alias(f"{f}__s")]
    return cols


def t(field: str) -> Column:
    return F.col(f"{field}__t")


def s(field: str) -> Column:
    return F.col(f"{field}__s")


def is_absent(t: Column) -> Column:
    return t.isNull() | (t == "VOID")


def is_numeric(t: Column) -> Column:
    return t.isin(*NUMERIC_TYPES) | t.startswith("DECIMAL")


def id_checks(fields: list[str], max_len: int, *, optional: tuple[str, ...] = ()) -> list[tuple[Column, str]]:
    """(condition, reason) pairs that reject bad identifier fields (see ``extract``), in order.

    One regex over all the ids finds control characters; the per-field regex only runs on the
    rare row where it matched."""
    any_control = F.concat_ws("", *[s(f) for f in fields]).rlike(CONTROL_CHARS)
    checks = []
    for field in fields:
        typ, val = t(field), s(field)
        empty = is_absent(typ) | ((typ == "STRING") & (F.trim(val) == ""))
        present = ~empty
        if field not in optional:
            checks.append((empty, f"missing_{field}"))
        checks += [
            (present & (typ != "STRING"), f"bad_type_{field}"),
            (present & any_control & val.rlike(CONTROL_CHARS), f"control_chars_{field}"),
            (present & (F.length(val) > max_len), f"too_long_{field}"),
        ]
    return checks


def first_reason(checks: list[tuple[Column, str]]) -> Column:
    """The reason of the first failing check, NULL when all pass."""
    expr = None
    for cond, reason in checks:
        expr = F.when(cond, F.lit(reason)) if expr is None else expr.when(cond, F.lit(reason))
    return expr.otherwise(F.lit(None).cast("string"))


def parse_fields(raw: DataFrame, fields: list[str], typed: dict[str, tuple[str, str]]) -> DataFrame:
    """Raw lines -> one row per line with the line-level facts and every field materialised.

    Columns: ``ds``, ``source_file``, ``line``, ``_utf8``, ``_blank``, ``_brace``, ``_v_null``,
    ``<field>__t``/``<field>__s`` for ``fields``, and one column per ``typed`` entry
    (name -> (JSON path, Spark type)) read with ``try_variant_get``.
    Two projections: the variant is parsed once, then each lookup runs once per row.
    """
    stripped = raw.select("ds", "source_file", "line", bom_stripped(F.col("line")).alias("_text"))
    text = F.col("_text")
    parsed = stripped.select(
        "ds",
        "source_file",
        "line",
        F.try_parse_json(text).alias("_v"),
        F.is_valid_utf8("line").alias("_utf8"),
        (F.trim(text) == "").alias("_blank"),
        F.ltrim(text).startswith("{").alias("_brace"),
    )
    v = F.col("_v")
    return parsed.select(
        "ds", "source_file", "line", "_utf8", "_blank", "_brace", v.isNull().alias("_v_null"),
        *extract(v, fields),
        *[F.try_variant_get(v, path, typ).alias(name) for name, (path, typ) in typed.items()],
    )


def line_checks() -> list[tuple[Column, str]]:
    """Checks every raw line goes through before its fields are looked at (see ``parse_fields``)."""
    return [
        (~F.col("_utf8"), "invalid_utf8"),
        (F.col("_blank"), "blank_line"),
        (F.col("_v_null"), "not_json"),
        # Valid JSON that starts with '{' is an object; cheaper than typing the whole value.
        (~F.col("_brace"), "not_object"),
    ]
