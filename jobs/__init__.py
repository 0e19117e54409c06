"""Entry points: each module is runnable as ``python -m jobs.<name>`` and by ``spark-submit``."""
