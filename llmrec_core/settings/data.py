"""Settings of the data side: the Spark session, what events mean, cleaning, sequences."""

from __future__ import annotations

from pydantic import Field, field_serializer, model_validator

from llmrec_core.settings.base import REDACTED, Section, redact_url, secret_key


class SparkSettings(Section):
    master: str = "local[*]"
    app_name: str = "llmrec"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(8, ge=1)
    # Any further spark.* settings, passed through verbatim (values of keys that name a
    # credential are shown as *** wherever settings are printed or logged).
    conf: dict[str, str] = Field(default_factory=dict)

    @field_serializer("conf")
    def _redact(self, conf: dict[str, str]) -> dict[str, str]:
        return {k: REDACTED if secret_key(k) else redact_url(v) for k, v in conf.items()}


class FeedbackSettings(Section):
    """Which events mean what. Configuration, not code (docs/data-contract.md, "Feedback semantics")."""

    positive_types: list[str] = ["click", "add_to_cart", "purchase"]
    history_types: list[str] = ["view"]
    rating_type: str = "rate"
    rating_min: float = 0.5
    rating_max: float = 5.0
    rating_positive_min: float = 4.0
    rating_negative_max: float = 2.0

    @property
    def event_types(self) -> list[str]:
        return sorted({*self.positive_types, *self.history_types, self.rating_type})

    @model_validator(mode="after")
    def _check(self) -> FeedbackSettings:
        if self.rating_min > self.rating_max:
            raise ValueError("rating_min must not exceed rating_max")
        overlap = set(self.positive_types) & set(self.history_types)
        if overlap:
            raise ValueError(f"event types both positive and history-only: {sorted(overlap)}")
        return self


class CleanSettings(Section):
    max_id_length: int = Field(256, ge=1)
    # A user with more events than this in one minute of one day is treated as a bot for that day.
    bot_max_events_per_minute: int = Field(100, ge=1)
    # A partition fails when quarantined-as-invalid rows exceed this share of rows read.
    max_bad_share: float = Field(0.05, ge=0.0, le=1.0)
    # Clock skew allowed past the end of a partition's day before an event counts as "in the future".
    future_tolerance_hours: float = Field(1.0, ge=0.0)
    max_text_length: int = Field(10_000, ge=1)
    # A raw line of this many bytes or more (its line break included) is quarantined as
    # `line_too_long` with its first KiB, without ever being held in memory whole.
    max_line_bytes: int = Field(1 << 20, ge=1024, le=1 << 30)
    # A raw partition is read only once its producer has written the `_SUCCESS` marker into it
    # (llmrec's ingest does). Producers that cannot write one set this to false: a partition is
    # then read as soon as it exists, and files that land later make the day be cleaned again.
    require_success_marker: bool = True
    # A day whose raw events partition holds no event is refused, so that a partition created
    # before its files arrive cannot replace the day's clean data with nothing. A producer
    # declares a day that really had no events with an `_EMPTY` marker; true accepts any empty day.
    allow_empty_days: bool = False


class SequenceSettings(Section):
    max_len: int = Field(50, ge=1)
