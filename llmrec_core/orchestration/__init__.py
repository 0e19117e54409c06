"""What the Airflow DAGs import: the assets they share, their defaults and their task bodies.

The local stack that runs them (``llmrec up``/``down``/``pipeline``) is process management and
lives apart, in the ``llmrec_stack`` package.
"""
