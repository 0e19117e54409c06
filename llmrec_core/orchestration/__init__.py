"""Orchestration: the assets the DAGs share, their task bodies, ``llmrec pipeline`` and the local stack."""
