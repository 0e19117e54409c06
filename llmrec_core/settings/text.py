"""How behaviours, items and profiles are rendered as text (section ``text``)."""

from __future__ import annotations

import string

from pydantic import Field, model_validator

from llmrec_core.settings.base import Section


class TextSettings(Section):
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
    # The same for a behaviour of today that the intraday refresh used ({value}: a rating).
    fresh_reason_templates: dict[str, str] = {
        "rate": "Because you just rated {title} {value} stars",
        "click": "Because you just clicked {title}",
        "view": "Because you just viewed {title}",
        "add_to_cart": "Because you just added {title} to your cart",
        "purchase": "Because you just bought {title}",
    }
    fresh_reason_default: str = "Because of your interest today in {title}"
    reason_popular: str = "Popular this week"
    # Every row of a list that is the same for everyone (a popularity model serving).
    reason_popular_list: str = "Among the most popular"
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
                                  self.reason_popular_list, self.reason_profile, self.reason_history], {"title"}),
            ("fresh_reason_templates", [*self.fresh_reason_templates.values(), self.fresh_reason_default], {"title", "value"}),
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
