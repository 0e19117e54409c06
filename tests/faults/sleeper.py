"""A stand-in for a long job: starts a grandchild (as Spark starts its JVM), writes both pids to
the file named by its argument, then sleeps."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(sys.argv[1]).write_text(f"{__import__('os').getpid()} {grandchild.pid}")
    print("working", flush=True)
    time.sleep(600)
