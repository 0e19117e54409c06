"""The two engines that run :mod:`llmrec_core.scoring.engine` over every user.

- ``local``: one process walks the users in blocks (GPU when present).
- ``spark``: ``mapInPandas`` over contiguous ranges of users, with the item side broadcast;
  the audience's partial top-K of each batch are merged with a window per item. Users'
  vectors and the item side are computed by the driver; the users x items search, the
  filters, re-ranking and reasons run on the executors. The package must be importable there
  (installed, or shipped with ``spark-submit --py-files``).

Both return the same two tables: user rows (``USER_ROWS``) sorted by (user, rank), and the
audience (item, rank, user, score) sorted by (item, rank).
"""

from __future__ import annotations

import logging
import math

import pyarrow as pa

from llmrec_core.scoring.engine import USER_INPUTS, USER_ROWS, ItemSide, UserBlock, audience, merge_audience, recommend

log = logging.getLogger(__name__)
USER_ROWS_DDL = "user int, rank int, item int, score double, reason string, source string"
AUDIENCE_DDL = "item int, user int, score double"


def run_local(users: pa.Table, side: ItemSide) -> tuple[pa.Table, pa.Table]:
    recs, partial = [], []
    step = side.user_block
    for start in range(0, max(len(users), 1), step):
        block = UserBlock.from_arrow(users.slice(start, step))
        if not len(block.users):
            continue
        recs.append(recommend(block, side))
        partial.append(audience(block, side))
        log.info("scored users %d..%d of %d", start, start + len(block.users), len(users))
    return _user_rows(recs), merge_audience(pa.concat_tables(partial), side.audience_k)


def run_spark(spark, users: pa.Table, side: ItemSide, users_per_partition: int) -> tuple[pa.Table, pa.Table]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    parts = max(1, math.ceil(len(users) / users_per_partition))
    df = spark.createDataFrame(users).repartitionByRange(parts, "user")
    shared = spark.sparkContext.broadcast(side)

    def recommend_batches(frames):
        for frame in frames:
            yield recommend(_block(frame), shared.value).to_pandas()

    def audience_batches(frames):
        for frame in frames:
            yield audience(_block(frame), shared.value).to_pandas()

    recs = df.mapInPandas(recommend_batches, USER_ROWS_DDL).toArrow()
    best = Window.partitionBy("item").orderBy(F.col("score").desc(), F.col("user").asc())
    aud = (df.mapInPandas(audience_batches, AUDIENCE_DDL)
           .withColumn("rank", F.row_number().over(best)).where(F.col("rank") <= side.audience_k)
           .select(F.col("item").cast("int"), F.col("rank").cast("int"), F.col("user").cast("int"), "score").toArrow())
    shared.unpersist()
    log.info("spark scored %d users in %d partitions", len(users), parts)
    return _user_rows([recs]), aud.sort_by([("item", "ascending"), ("rank", "ascending")])


def _block(frame) -> UserBlock:
    return UserBlock.from_arrow(pa.Table.from_pandas(frame, schema=USER_INPUTS, preserve_index=False))


def _user_rows(parts: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables([p.cast(USER_ROWS) for p in parts]) if parts else USER_ROWS.empty_table()
    return table.sort_by([("user", "ascending"), ("rank", "ascending")])
