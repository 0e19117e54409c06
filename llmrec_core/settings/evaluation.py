"""Evaluation and the baselines' hyper-parameters (section ``evaluation``)."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from llmrec_core.settings.base import Section


class EvaluationSettings(Section):
    ks: list[int] = [10, 20]
    # Gate metric: the one early stopping and promotion compare.
    metric: str = "ndcg_10"
    # `llmrec evaluate`'s test window when no --window is given; without --cutoff it is the last
    # this many days of the snapshot (the benchmark's known datasets keep their own cut-offs).
    temporal_window_days: int = Field(30, ge=1)
    knn_neighbours: int = Field(100, ge=1)
    als_rank: int = Field(64, ge=2)
    als_iterations: int = Field(10, ge=1)
    als_reg: float = Field(0.05, ge=0.0)
    als_alpha: float = Field(10.0, ge=0.0)
    ease_l2: float = Field(500.0, gt=0.0)
    # Popularity counts the last this many days before the training events end (0: all of them).
    popularity_days: int = Field(0, ge=0)
    # The content baseline's taste weights halve every this many behaviours back (0: a plain mean).
    content_half_life: float = Field(0.0, ge=0.0)
    # ... and its behaviours labelled as explicit dislikes weigh this much (1: like any other
    # behaviour, 0: left out, -1: the taste moves away from them).
    content_negative_weight: float = Field(1.0, ge=-1.0, le=1.0)
    # Baselines are tuned on the validation split like the model: each grid is tried, the best
    # value of `metric` wins. An empty grid keeps the single value above.
    tune_baselines: bool = True
    popularity_days_grid: list[int] = [7, 14, 30, 60]
    knn_neighbours_grid: list[int] = [20, 50, 100, 200, 400]
    knn_shrink_grid: list[float] = [0.0, 10.0, 50.0, 200.0]
    ease_l2_grid: list[float] = [50.0, 200.0, 500.0, 1000.0, 3000.0, 10000.0]
    als_rank_grid: list[int] = [32, 64]
    als_reg_grid: list[float] = [0.01, 0.1]
    als_alpha_grid: list[float] = [1.0, 10.0, 40.0]
    content_half_life_grid: list[float] = [5.0, 20.0, 50.0]
    content_negative_weight_grid: list[float] = [0.0, -1.0]
    # The language model's `model.cold_taste_weight` is chosen the same way, by the recall@K
    # (K = cold_taste_k) of users with history over the new items they rated in the validation
    # window (docs/evaluation.md); an empty grid keeps the configured weight.
    cold_taste_weight_grid: list[float] = [0.0, 0.5, 1.0, 2.0, 4.0]
    cold_taste_k: int = Field(20, ge=1)
    # And `model.audience` with `model.audience_activity_weight`: "click" first, then "share" with
    # each weight of the grid, by the audience recall@K (K = cold_taste_k) of the validation
    # window's new items; an empty grid keeps the configured audience.
    audience_activity_grid: list[float] = [0.0, 0.5, 1.0, 2.0, 4.0]
    # EASE inverts an items x items matrix: above this many items it is left out.
    ease_max_items: int = Field(20_000, ge=1)

    @model_validator(mode="after")
    def _checks(self) -> EvaluationSettings:
        if any(not -1.0 <= w <= 1.0 for w in self.content_negative_weight_grid):
            raise ValueError(f"content_negative_weight_grid values must be between -1 and 1, not {self.content_negative_weight_grid}")
        if any(not 0.0 <= w <= 10.0 for w in self.cold_taste_weight_grid):
            raise ValueError(f"cold_taste_weight_grid values must be between 0 and 10, not {self.cold_taste_weight_grid}")
        if any(not 0.0 <= w <= 10.0 for w in self.audience_activity_grid):
            raise ValueError(f"audience_activity_grid values must be between 0 and 10, not {self.audience_activity_grid}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must be a non-empty list of cut-offs >= 1")
        m = re.fullmatch(r"(hr|ndcg|precision|recall)_(\d+)", self.metric)
        if not m or int(m.group(2)) not in self.ks:
            raise ValueError(f"metric {self.metric!r} must be hr|ndcg|precision|recall_K with K in ks {self.ks}")
        return self
