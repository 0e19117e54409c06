"""The assets the llmrec DAGs produce and consume, as named constants (one place).

- ``SEQUENCES``: the lake's daily snapshots (sequences, items, users) of a day, passed checks.
  Produced by ``llmrec_etl``; schedules ``llmrec_train`` (by default) and ``llmrec_score``.
- ``CHAMPION``: a training run finished (the champion alias may have moved). Produced by ``llmrec_train``.
- ``RECOMMENDATIONS``: a day's serving tables published to the warehouse. Produced by ``llmrec_score``.
"""

from __future__ import annotations

from airflow.sdk import Asset

SEQUENCES = Asset(name="llmrec_sequences", uri="llmrec://lake/sequences", group="llmrec")
CHAMPION = Asset(name="llmrec_champion", uri="llmrec://mlflow/models/llmrec", group="llmrec")
RECOMMENDATIONS = Asset(name="llmrec_recommendations", uri="llmrec://warehouse/user_recommendations", group="llmrec")
