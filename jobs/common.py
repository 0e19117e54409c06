"""What every job entry point shares: logging set-up and turning known errors into exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from llmrec_core.errors import LlmrecError
from llmrec_core.settings import SettingsError


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
