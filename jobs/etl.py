"""Clean raw logs, then build the daily snapshots, in one Spark application.

    python -m jobs.etl --ds 2024-01-31 | --start A --end B | --all [--config FILE]
"""

from __future__ import annotations

import sys

from jobs import build_sequences, clean_logs
from jobs.common import day_job, run_main


def run(spark, settings, days):
    """Both steps for ``days``; returns (clean summaries, snapshot counts by day)."""
    return clean_logs.run(spark, settings, days), build_sequences.run(spark, settings, days)


def main(argv: list[str] | None = None):
    return day_job("etl", __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
