"""The nightly scoring job and the serving warehouse (sections ``scoring``, ``warehouse``).

The warehouse itself is chosen by the top-level ``warehouse_url`` (``$LLMREC_WAREHOUSE_URL``):
unset means the DuckDB file ``$LLMREC_HOME/warehouse.duckdb``; ``postgresql://...`` means Postgres.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from llmrec_core.settings.base import Section, check_identifier


class FilterSettings(Section):
    """Business rules on what may be recommended, applied to every output row.

    ``include_*`` empty means no restriction. Attribute rules map an item attribute to the
    values that admit (include) or bar (exclude) an item; values compare as strings.
    """

    include_categories: list[str] = []
    exclude_categories: list[str] = []
    include_attributes: dict[str, list[str]] = {}
    exclude_attributes: dict[str, list[str]] = {}


class ScoringSettings(Section):
    k: int = Field(20, ge=1, le=1000)
    similar_k: int = Field(20, ge=1, le=1000)
    audience_k: int = Field(100, ge=1, le=100_000)
    # local: one process (GPU when present); spark: mapInArrow over user partitions.
    engine: Literal["local", "spark"] = "local"
    device: str = "auto"
    # Memory of the top-K search is bounded by user_block x item_block scores, never users x items.
    user_block: int = Field(4096, ge=1)
    item_block: int = Field(65536, ge=1)
    # Users per Spark partition (engine: spark).
    users_per_partition: int = Field(20_000, ge=1)
    # Cross-encoder re-rank of each user's top rerank.top_n: auto = when a GPU is present.
    rerank: Literal["auto", "on", "off"] = "auto"
    # Popularity for users with nothing at all: positive events of the last N days.
    popular_days: int = Field(7, ge=1)
    # Behaviours considered as the reason of a recommendation (the most recent ones).
    reason_history: int = Field(50, ge=1)
    filters: FilterSettings = Field(default_factory=FilterSettings)


class RefreshSettings(Section):
    """The intraday refresh (``llmrec refresh``, DAG ``llmrec_refresh``): the nightly list of users
    who acted today, re-ranked with today's behaviours."""

    # Cross-encoder re-rank over "fresh behaviours as text [SEP] candidate": auto = when a GPU is present.
    rerank: Literal["auto", "on", "off"] = "auto"
    # The newest fresh behaviours the cross-encoder reads (its left side).
    text_behaviours: int = Field(10, ge=1, le=100)
    # Users re-ranked at once (memory: user_block x rerank.top_n pairs).
    user_block: int = Field(2048, ge=1)


class WarehouseSettings(Section):
    # Postgres schema / DuckDB schema of the serving tables; None = the default (public / main).
    schema_name: str | None = None
    user_recommendations: str = "user_recommendations"
    item_recommendations: str = "item_recommendations"
    item_audience: str = "item_audience"
    publications: str = "publications"
    # The intraday refresh's rows; the view <user_recommendations>_current merges them with the nightly ones.
    user_recommendations_fresh: str = "user_recommendations_fresh"
    # Published days older than this many days before the newest are dropped.
    keep_days: int = Field(30, ge=1)
    # A day's row count may differ from the previous published day's by at most this share.
    row_count_tolerance: float = Field(0.5, ge=0.0)
    parquet_copies: bool = True

    @field_validator("schema_name", "user_recommendations", "item_recommendations", "item_audience", "publications",
                     "user_recommendations_fresh")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)

    def table(self, name: str) -> str:
        """The configured name of a logical table (``user_recommendations`` ...)."""
        return getattr(self, name)
