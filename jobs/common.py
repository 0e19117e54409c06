"""What every job entry point shares: logging set-up and turning known errors into exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable
from typing import Any

from llmrec_core.errors import LlmrecError
from llmrec_core.settings import Settings, SettingsError


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(fn: Callable[[], object]) -> int:
    """Run ``fn``; a user-facing error prints one clear line and exits 1, never a traceback."""
    setup_logging()
    try:
        fn()
    except (LlmrecError, SettingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def ds_parser(name: str, doc: str, ds_help: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The arguments every single-day job takes: ``--ds`` (a day or 'latest') and ``--config``."""
    from llmrec_core.days import add_day_arg

    parser = argparse.ArgumentParser(prog=prog or f"jobs.{name}", description=doc.strip().split("\n")[0])
    add_day_arg(parser, ds_help)
    parser.add_argument("--config", help="YAML settings file")
    return parser


def day_job(name: str, doc: str, run: Callable[[Any, Settings, list[dt.date]], Any], argv: list[str] | None):
    """The whole entry point of a job over days: arguments -> settings -> days -> session -> run."""
    from llmrec_core.days import add_day_range_args, resolve_days
    from llmrec_core.io.spark import get_spark
    from llmrec_core.settings import load_settings

    parser = argparse.ArgumentParser(prog=f"jobs.{name}", description=doc.strip().split("\n")[0])
    add_day_range_args(parser)
    parser.add_argument("--config", help="YAML settings file")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    days = resolve_days(args, settings.raw_table("events"))
    return run(get_spark(settings.spark, f"llmrec-{name}"), settings, days)
