"""Long steps: plain log lines where output is a log, a bar only on a terminal, nothing when off."""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

from llmrec_core.progress import Lines, progress


def test_a_log_gets_plain_lines_with_count_share_rate_and_the_last_postfix(caplog, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    caplog.set_level(logging.INFO, logger="llmrec_core.progress")
    bar = progress(range(4), "encoding 4 texts", every_s=0.0)
    assert isinstance(bar, Lines)
    seen = []
    for i in bar:
        seen.append(i)
        bar.set_postfix(loss=f"{1 / (i + 1):.2f}")
    assert seen == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 and all("\r" not in line for line in lines)
    assert lines[0].startswith("encoding 4 texts: 1/4 (25%) in ") and lines[0].endswith("[loss=1.00]")
    assert lines[-1].startswith("encoding 4 texts: done, 4/4 in ") and "/s" in lines[-1] and lines[-1].endswith("[loss=0.25]")


def test_a_log_is_not_flooded_between_intervals(caplog, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    caplog.set_level(logging.INFO, logger="llmrec_core.progress")
    assert list(progress(iter(range(1000)), "scoring blocks", every_s=3600)) == list(range(1000))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("scoring blocks: done, 1,000 in ")  # no total known for an iterator


def test_a_terminal_gets_a_bar_and_disabled_progress_says_nothing(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="llmrec_core.progress")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress(range(3), "epoch 1/2")
    assert isinstance(bar, tqdm) and not bar.disable and bar.total == 3
    assert list(bar) == [0, 1, 2]
    off = progress(range(3), "epoch 1/2", enabled=False)
    assert list(off) == [0, 1, 2] and off.disable
    off.set_postfix(loss="0.1")  # the training loop calls it either way
    assert caplog.records == []
