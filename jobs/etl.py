"""Clean raw logs, then build the daily snapshots, in one Spark application.

    python -m jobs.etl --ds 2024-01-31 | --start A --end B | --all [--config FILE]
"""

from __future__ import annotations

import argparse
import sys

from jobs import build_sequences, clean_logs
from llmrec_core.etl.days import add_day_args, resolve_days
from llmrec_core.io.spark import get_spark
from llmrec_core.settings import load_settings


def run(spark, settings, days):
    """Both steps for ``days``; returns (clean summaries, snapshot counts by day)."""
    return clean_logs.run(spark, settings, days), build_sequences.run(spark, settings, days)


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(prog="jobs.etl", description=__doc__.split("\n")[0])
    add_day_args(parser)
    parser.add_argument("--config", help="YAML settings file")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    days = resolve_days(args, settings)
    spark = get_spark(settings.spark, "llmrec-etl")
    return run(spark, settings, days)


if __name__ == "__main__":
    from jobs.common import run_main

    sys.exit(run_main(main))
