"""The two engines that run :mod:`llmrec_core.scoring.engine` over every user.

- ``local``: one process walks the users in blocks (GPU when present).
- ``spark``: ``mapInArrow`` over contiguous ranges of users, with :class:`Scoring` (the
  recommender, the histories, the item side) broadcast; the audience's partial top-K of each
  batch are merged with a window per item. User vectors, the users x items search, the
  filters, re-ranking and reasons all run on the executors. The package must be importable
  there (installed, or shipped with ``spark-submit --py-files``).

Both return the same two tables: user rows (``USER_ROWS``) sorted by (user, rank), and the
audience (item, rank, user, score) sorted by (item, rank).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyarrow as pa

from llmrec_core.progress import progress
from llmrec_core.scoring.engine import (
    AUDIENCE_ROWS,
    USER_ROWS,
    Scoring,
    audience,
    merge_audience,
    recommend,
)

log = logging.getLogger(__name__)
USER_ROWS_DDL = "user int, rank int, item int, score double, reason string, source string"
AUDIENCE_DDL = "item int, user int, score double"


def run_local(sc: Scoring) -> tuple[pa.Table, pa.Table]:
    recs, partial = [], []
    step = sc.user_block
    for start in progress(range(0, sc.n_users, step), f"scoring {sc.n_users:,} users (blocks of {step:,})"):
        users = np.arange(start, min(sc.n_users, start + step))
        recs.append(recommend(users, sc))
        partial.append(audience(users, sc))
    parts = pa.concat_tables(partial) if partial else AUDIENCE_ROWS.empty_table()
    return _user_rows(recs), merge_audience(parts, sc.audience_k)


def run_spark(spark, sc: Scoring, users_per_partition: int) -> tuple[pa.Table, pa.Table]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    parts = max(1, math.ceil(sc.n_users / users_per_partition))
    df = spark.range(sc.n_users).select(F.col("id").cast("int").alias("user")).repartitionByRange(parts, "user")
    shared = spark.sparkContext.broadcast(sc)

    # Arrow record batches in and out: the engine's tables cross to Spark without pandas.
    def recommend_batches(batches):
        for batch in batches:
            yield from recommend(batch.column("user").to_numpy(), shared.value).to_batches()

    def audience_batches(batches):
        for batch in batches:
            yield from audience(batch.column("user").to_numpy(), shared.value).to_batches()

    recs = df.mapInArrow(recommend_batches, USER_ROWS_DDL).toArrow()
    best = Window.partitionBy("item").orderBy(F.col("score").desc(), F.col("user").asc())
    aud = (df.mapInArrow(audience_batches, AUDIENCE_DDL)
           .withColumn("rank", F.row_number().over(best)).where(F.col("rank") <= sc.audience_k)
           .select(F.col("item").cast("int"), F.col("rank").cast("int"), F.col("user").cast("int"), "score").toArrow())
    shared.unpersist()
    log.info("spark scored %d users in %d partitions", sc.n_users, parts)
    return _user_rows([recs]), aud.sort_by([("item", "ascending"), ("rank", "ascending")])


def _user_rows(parts: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables([p.cast(USER_ROWS) for p in parts]) if parts else USER_ROWS.empty_table()
    return table.sort_by([("user", "ascending"), ("rank", "ascending")])
