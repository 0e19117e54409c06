"""Run a job module and SIGKILL its process at a named commit point (the harm done for real).

    python -m tests.faults.crash POINT MODULE [ARGS...]

POINT is one of:
- ``before-exchange``: just before a partition is swapped in;
- ``after-exchange``: just after, before the previous content is deleted;
- ``between-renames``: on a filesystem that cannot exchange, after the old partition is
  renamed away and before the new one is renamed in;
- ``before-summary``: after every partition is committed, before the run summary is written;
- ``after-publish``: just after the warehouse commit of a scoring run, before anything else.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

from llmrec_core.io import lake


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    exchange, replace, write_json = lake._exchange, os.replace, lake.write_json_atomic
    if point == "before-exchange":
        lake._exchange = lambda a, b: die()
    elif point == "after-exchange":
        lake._exchange = lambda a, b: exchange(a, b) and die()
    elif point == "between-renames":
        lake._exchange = lambda a, b: False

        def replace_then_die(src, dst, *args, **kwargs):
            replace(src, dst, *args, **kwargs)
            if os.path.basename(dst).startswith("_replaced."):
                die()

        lake.os.replace = replace_then_die
    elif point == "before-summary":

        def write_or_die(path, payload):
            if "_runs" in str(path):
                die()
            write_json(path, payload)

        lake.write_json_atomic = write_or_die
    elif point == "after-publish":
        from llmrec_core.io.warehouse import Warehouse

        publish = Warehouse.publish

        def publish_then_die(self, *args, **kwargs):
            publish(self, *args, **kwargs)
            die()

        Warehouse.publish = publish_then_die
    else:
        raise SystemExit(f"unknown point {point}")


if __name__ == "__main__":
    point, module, *args = sys.argv[1:]
    arm(point)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
