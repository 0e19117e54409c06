"""Typed access to the fields of one raw JSON line, shared by the events, items and users cleaners.

Lines are parsed once into a Variant; each field keeps its JSON type, so ``"user_id": 12`` is
told apart from ``"user_id": "12"`` (a plain ``from_json`` would coerce the number to text).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

NUMERIC_TYPES = ("BIGINT", "INT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT")
# C0 and C1 control characters (tab and newline included: an id has no business holding them),
# and characters that change how an id looks without being seen: zero-width characters, bidi
# embeddings, overrides and isolates (U+202E shows "1u" for "u1"), word joiners, the BOM, line and
# paragraph separators, and unpaired surrogates (which no UTF-8 writer can encode).
CONTROL_CHARS = (r"[\x00-\x1f\x7f-\x9f\x{200B}-\x{200F}\x{2028}-\x{202E}\x{2060}-\x{2064}\x{2066}-\x{2069}"
                 r"\x{FEFF}\x{D800}-\x{DFFF}]")
# Combining accents: an id that holds one is in decomposed form (NFD), the twin of its composed
# form ("cafe" + U+0301 beside "café"), and would split one user or item in two.
DECOMPOSED = r"[\x{0300}-\x{036F}]"
# What ``clean.read_raw_lines`` puts before the first KiB of a line too long to read.
TOO_LONG = "\x00llmrec:line_too_long:"


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
            (present & val.rlike(DECOMPOSED), f"not_nfc_{field}"),
            (present & (F.length(val) > max_len), f"too_long_{field}"),
        ]
    return checks


def first_reason(checks: list[tuple[Column, str]]) -> Column:
    """The reason of the first failing check, NULL when all pass."""
    expr = None
    for cond, reason in checks:
        expr = F.when(cond, F.lit(reason)) if expr is None else expr.when(cond, F.lit(reason))
    return expr.otherwise(F.lit(None).cast("string"))


def parse_fields(raw: DataFrame, fields: list[str], typed: dict[str, tuple[str, str, str]]) -> DataFrame:
    """Raw lines -> one row per line with the line-level facts and every field materialised.

    Columns: ``ds``, ``source_file``, ``line``, ``_utf8``, ``_v_null``, ``_brace``,
    ``<field>__t``/``<field>__s`` for ``fields``, and one column per ``typed`` entry
    (name -> (field, Spark type, JSON type prefix)) read only from rows where the field's JSON
    type starts with that prefix ("numeric" for any number), NULL elsewhere.
    Two projections: the variant is parsed once, then each lookup runs once per row.
    """
    line = F.col("line")
    parsed = raw.select(
        "ds",
        "source_file",
        line,
        parse_line(line).alias("_v"),
        F.is_valid_utf8(line).alias("_utf8"),
    )
    v = F.col("_v")
    # Most lines start with '{'; only the others pay for stripping a BOM and leading blanks.
    brace = F.when(line.startswith("{"), F.lit(True)).otherwise(F.ltrim(bom_stripped(line)).startswith("{"))
    with_types = parsed.select(
        "ds", "source_file", "line", "_v", "_utf8", v.isNull().alias("_v_null"), brace.alias("_brace"),
        *[jtype(v, f).alias(f"{f}__t") for f in fields],
    )
    lookups = []
    for name, (field, spark_type, json_type) in typed.items():
        has = is_numeric(t(field)) if json_type == "numeric" else t(field).startswith(json_type)
        lookups.append(F.when(has, F.try_variant_get(v, f"$.{field}", spark_type)).alias(name))
    return with_types.select(
        "ds", "source_file", "line", "_utf8", "_v_null", "_brace",
        *[t(f) for f in fields],
        *[F.when(t(f) == "STRING", jstring(v, f)).alias(f"{f}__s") for f in fields],
        *lookups,
    )


def line_checks() -> list[tuple[Column, str]]:
    """Checks every raw line goes through before its fields are looked at (see ``parse_fields``)."""
    line = F.col("line")
    return [
        (line.startswith(TOO_LONG), "line_too_long"),
        (~F.col("_utf8"), "invalid_utf8"),
        (F.col("_v_null") & (F.trim(bom_stripped(line)) == ""), "blank_line"),
        (F.col("_v_null"), "not_json"),
        # Valid JSON that starts with '{' is an object; cheaper than typing the whole value.
        (~F.col("_brace"), "not_object"),
    ]


def finish(fields: DataFrame, checks: list[tuple[Column, str]], *columns: Column) -> DataFrame:
    """The parsed rows every cleaner hands on: where the line came from, the line itself (valid
    UTF-8), the first failing check's reason, then the source's own typed columns."""
    return fields.select(
        "ds",
        "source_file",
        valid_text(F.col("line"), F.col("_utf8")).alias("raw_line"),
        first_reason(checks).alias("reason"),
        *columns,
    )
