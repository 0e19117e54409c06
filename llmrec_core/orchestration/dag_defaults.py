"""What the three DAGs share: their start date and the shape of their task defaults.

Plain values only (no Airflow import), so DAG files stay cheap to parse.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2024, 1, 1, tzinfo=UTC)
# The ``ds`` param of every DAG: a day or ``latest`` (llmrec_core/days.py says what each means).
DAY_PATTERN = r"^(latest|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))$"


def default_args(*, retries: int, retry_delay: timedelta, execution_timeout: timedelta) -> dict:
    """Retries with exponential backoff (capped at an hour) and a timeout for every task."""
    return {
        "owner": "llmrec",
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
        "execution_timeout": execution_timeout,
    }
