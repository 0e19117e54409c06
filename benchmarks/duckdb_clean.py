"""The cleaning step of ``jobs.clean_logs`` (events) written as DuckDB SQL, for comparison.

    python benchmarks/duckdb_clean.py RAW_EVENTS_DIR OUT_DIR [--threads 2]

Same checks, reason codes, per-day dedupe (earliest copy) and bot filter as the Spark job, over
the same raw files, writing clean rows and quarantine to Parquet. One difference is DuckDB's:
its CSV reader cannot pass invalid UTF-8 through, so such lines are skipped (``ignore_errors``)
instead of quarantined; the benchmark reports how many.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

SQL = r"""
CREATE OR REPLACE TEMP TABLE raw AS
SELECT line, filename AS source_file,
       split_part(split_part(filename, '/ds=', 2), '/', 1)::DATE AS ds
FROM read_csv('{src}/ds=*/*.jsonl*', columns={{'line': 'VARCHAR'}}, delim='\x01', quote='', escape='',
              header=false, filename=true, auto_detect=false, ignore_errors=true, strict_mode=false);

CREATE OR REPLACE TEMP TABLE parsed AS
WITH v AS (SELECT *, CASE WHEN json_valid(line) THEN line END AS jl FROM raw),
j AS (
  SELECT ds, source_file, line, jl,
         json_type(jl, '$.user_id') AS ut, json_extract_string(jl, '$.user_id') AS user_id,
         json_type(jl, '$.item_id') AS it, json_extract_string(jl, '$.item_id') AS item_id,
         json_type(jl, '$.event_id') AS et, json_extract_string(jl, '$.event_id') AS given_id,
         json_type(jl, '$.event_type') AS tt, json_extract_string(jl, '$.event_type') AS event_type,
         json_type(jl, '$.value') AS vt, TRY_CAST(json_extract(jl, '$.value') AS DOUBLE) AS value,
         json_type(jl, '$.ts') AS st, json_extract_string(jl, '$.ts') AS ts_s
  FROM v),
t AS (
  SELECT *, CASE WHEN st = 'VARCHAR' AND regexp_matches(ts_s, '(Z|[+-]\d{{2}}(:?\d{{2}})?)$')
                   THEN TRY_CAST(ts_s AS TIMESTAMPTZ)
                 WHEN st IN ('UBIGINT', 'BIGINT', 'DOUBLE') AND abs(TRY_CAST(ts_s AS DOUBLE)) < 253402300799
                   THEN to_timestamp(TRY_CAST(ts_s AS DOUBLE)) END AS ts
  FROM j)
SELECT ds, source_file, line AS raw_line,
  CASE WHEN trim(line) = '' THEN 'blank_line'
       WHEN jl IS NULL THEN 'not_json'
       WHEN json_type(jl) <> 'OBJECT' THEN 'not_object'
       WHEN et NOT IN ('VARCHAR', 'NULL') THEN 'bad_type_event_id'
       WHEN regexp_matches(given_id, '[\x00-\x1f\x7f-\x9f]') THEN 'control_chars_event_id'
       WHEN length(given_id) > {max_id} THEN 'too_long_event_id'
       WHEN ut IS NULL OR ut = 'NULL' OR trim(user_id) = '' THEN 'missing_user_id'
       WHEN ut <> 'VARCHAR' THEN 'bad_type_user_id'
       WHEN regexp_matches(user_id, '[\x00-\x1f\x7f-\x9f]') THEN 'control_chars_user_id'
       WHEN length(user_id) > {max_id} THEN 'too_long_user_id'
       WHEN it IS NULL OR it = 'NULL' OR trim(item_id) = '' THEN 'missing_item_id'
       WHEN it <> 'VARCHAR' THEN 'bad_type_item_id'
       WHEN regexp_matches(item_id, '[\x00-\x1f\x7f-\x9f]') THEN 'control_chars_item_id'
       WHEN length(item_id) > {max_id} THEN 'too_long_item_id'
       WHEN tt IS NULL OR tt = 'NULL' OR trim(event_type) = '' THEN 'missing_event_type'
       WHEN tt <> 'VARCHAR' OR event_type NOT IN ({event_types}) THEN 'unknown_event_type'
       WHEN event_type = '{rating_type}' AND (vt IS NULL OR vt = 'NULL') THEN 'missing_rating'
       WHEN event_type = '{rating_type}' AND vt NOT IN ('UBIGINT', 'BIGINT', 'DOUBLE') THEN 'rating_not_numeric'
       WHEN event_type = '{rating_type}' AND (value < {rmin} OR value > {rmax}) THEN 'rating_out_of_range'
       WHEN vt IS NOT NULL AND vt <> 'NULL' AND vt NOT IN ('UBIGINT', 'BIGINT', 'DOUBLE') THEN 'value_not_numeric'
       WHEN st IS NULL OR st = 'NULL' THEN 'missing_ts'
       WHEN st = 'VARCHAR' AND ts IS NULL AND regexp_matches(ts_s, '^\d{{4}}-\d{{2}}-\d{{2}}([T ]\d{{2}}:\d{{2}}(:\d{{2}}(\.\d{{1,9}})?)?)?$') THEN 'ts_no_offset'
       WHEN ts IS NULL THEN 'ts_unparsable'
       WHEN ts < TIMESTAMPTZ '1970-01-01 00:00:00+00' THEN 'ts_before_1970'
       WHEN ts >= ds::TIMESTAMPTZ + INTERVAL 1 DAY + INTERVAL {tol} SECOND OR ts > now() + INTERVAL {tol} SECOND THEN 'ts_in_future'
  END AS reason,
  coalesce(nullif(trim(given_id), ''),
           left(sha256(concat_ws(chr(31), user_id, item_id, event_type, coalesce(value::VARCHAR, ''), epoch_us(ts)::VARCHAR)), 32)) AS event_id,
  user_id, item_id, event_type, value, ts
FROM t;

CREATE OR REPLACE TEMP TABLE firsts AS
SELECT * FROM parsed WHERE reason IS NULL
QUALIFY row_number() OVER (PARTITION BY ds, event_id ORDER BY ts, raw_line, source_file) = 1;

CREATE OR REPLACE TEMP TABLE bots AS
SELECT DISTINCT ds, user_id FROM (
  SELECT ds, user_id, date_trunc('minute', ts) AS m, count(*) AS c FROM firsts GROUP BY ALL
) WHERE c > {bot_max};

COPY (SELECT event_id, user_id, item_id, event_type, value, ts, ds FROM firsts ANTI JOIN bots USING (ds, user_id))
  TO '{out}/clean_events' (FORMAT parquet, PARTITION_BY (ds), OVERWRITE_OR_IGNORE);
COPY (SELECT reason, raw_line, source_file, ds FROM parsed WHERE reason IS NOT NULL
      UNION ALL SELECT 'bot_user', raw_line, source_file, ds FROM firsts SEMI JOIN bots USING (ds, user_id))
  TO '{out}/quarantine' (FORMAT parquet, PARTITION_BY (ds), OVERWRITE_OR_IGNORE);
"""


def run(src: str, out: str, threads: int) -> dict:
    import duckdb

    from llmrec_core.settings import load_settings

    s = load_settings()
    sql = SQL.format(
        src=src, out=out, max_id=s.clean.max_id_length, rating_type=s.feedback.rating_type,
        event_types=", ".join(f"'{t}'" for t in s.feedback.event_types), rmin=s.feedback.rating_min,
        rmax=s.feedback.rating_max, tol=int(s.clean.future_tolerance_hours * 3600),
        bot_max=s.clean.bot_max_events_per_minute,
    )
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    start = time.perf_counter()
    con.execute(sql)
    wall = time.perf_counter() - start
    count = lambda q: con.execute(q).fetchone()[0]  # noqa: E731
    return {
        "wall_s": round(wall, 2),
        "read": count("SELECT count(*) FROM raw"),
        "clean": count("SELECT count(*) FROM firsts ANTI JOIN bots USING (ds, user_id)"),
        "quarantined": count("SELECT count(*) FROM parsed WHERE reason IS NOT NULL")
        + count("SELECT count(*) FROM firsts SEMI JOIN bots USING (ds, user_id)"),
        "duplicates": count("SELECT count(*) FROM parsed WHERE reason IS NULL") - count("SELECT count(*) FROM firsts"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    json.dump(run(args.src, args.out, args.threads), sys.stdout)
