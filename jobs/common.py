"""What every job entry point shares: logging set-up and turning known errors into exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from llmrec_core.errors import LlmrecError
from llmrec_core.settings import Settings, SettingsError


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(fn: Callable[[], object]) -> int:
    """Run ``fn``; a user-facing error prints one clear line and exits 1, never a traceback.
    Files the job creates are its owner's only (``settings.private_files``)."""
    from llmrec_core.settings import private_files

    private_files()
    setup_logging()
    try:
        fn()
    except (LlmrecError, SettingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


@contextmanager
def guarded(settings: Settings, job: str, days: Iterable[dt.date]) -> Iterator[None]:
    """Run as the only writer of ``job`` for ``days`` in this home (or fail at once, naming the
    other run), after finishing any partition commit that a crash interrupted."""
    from llmrec_core.io import lake, locks
    from llmrec_core.settings import private_files

    private_files(settings.home)
    # Created here, 0700: a Spark JVM that creates them has its launcher's umask.
    for folder in (settings.lake_dir, settings.lake_dir / "_staging"):
        folder.mkdir(mode=0o700, exist_ok=True)
    with locks.hold(settings.home, job, days):
        for root in (settings.raw_dir, settings.lake_dir):
            if root.is_dir():
                lake.recover(root)
        yield


def refuse_unready(settings: Settings, ds: dt.date) -> None:
    """The day a cleaning run is for must be complete (earlier days of a range that are not
    are left as they are, with a warning)."""
    from llmrec_core.errors import MissingInputError
    from llmrec_core.orchestration.tasks import raw_not_ready

    if (why := raw_not_ready(ds, settings)) is not None:
        raise MissingInputError(why)


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
    if name in ("clean_logs", "etl"):
        refuse_unready(settings, days[-1])
    # The cleaning and the snapshot build write the same lake partitions: one lock for both.
    with guarded(settings, "etl", days):
        return run(get_spark(settings.spark, f"llmrec-{name}"), settings, days)
