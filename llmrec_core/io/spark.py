"""Build the SparkSession every job uses.

The master comes from configuration (default ``local[*]``) unless ``spark-submit`` already set
one. The driver binds to 127.0.0.1; timestamps are UTC end to end.
"""

from __future__ import annotations

import logging
import os
import sys

from llmrec_core.settings import SparkSettings

log = logging.getLogger(__name__)

JVM_OPTIONS = "-Duser.timezone=UTC -XX:-DontCompileHugeMethods -XX:+UseParallelGC"


def base_conf(spark: SparkSettings) -> dict[str, str]:
    conf = {
        "spark.driver.memory": spark.driver_memory,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Lake paths are listed on the driver: a distributed listing job per read costs more
        # than it saves for the few hundred daily partitions a backfill touches.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # The generated code of the cleaning expressions is past HotSpot's 8000-byte limit for
        # JIT compilation; without the flag it runs interpreted, about 1.6x slower. The
        # throughput collector suits batch jobs on few cores better than G1 (about 10% here).
        "spark.driver.extraJavaOptions": JVM_OPTIONS,
        "spark.executor.extraJavaOptions": JVM_OPTIONS,
        # Hadoop applies its own umask to the files Spark writes, not the process's: the lake
        # is its owner's only, like everything else under $LLMREC_HOME.
        "spark.hadoop.fs.permissions.umask-mask": "077",
    }
    conf.update(spark.conf)
    return conf


def get_spark(spark: SparkSettings, app_name: str | None = None):
    """Return the active session or build one from settings."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (mapInArrow) run this interpreter, with its packages, unless set otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    submitted = SparkConf()  # holds what spark-submit passed, if anything
    builder = SparkSession.builder.appName(app_name or spark.app_name)
    if not submitted.contains("spark.master"):
        builder = builder.master(spark.master)
    for key, value in base_conf(spark).items():
        if not submitted.contains(key):
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    log.info("spark session %s on %s", session.sparkContext.appName, session.sparkContext.master)
    return session
