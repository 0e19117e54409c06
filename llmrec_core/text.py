"""Text rendering: the one place where items, behaviours and user profiles become text.

Every template and cap comes from :class:`llmrec_core.settings.TextSettings`:

    >>> render = TextRenderer(TextSettings())
    >>> render.item({"title": "Toy Story (1995)", "categories": ["Animation", "Comedy"]})
    'Toy Story (1995). Genres: Animation, Comedy.'
    >>> render.behaviour("rate", 5.0, "Toy Story (1995)")
    'rated 5: Toy Story (1995)'

Control and zero-width characters are replaced by spaces, whitespace is collapsed, and every
text is capped (at a word boundary when one is near). Personal attributes listed in
``exclude_user_attributes`` never reach a profile text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from llmrec_core.settings import TextSettings

# C0/C1 controls, zero-width and bidi controls, line/paragraph separators, BOM.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_SPACES = re.compile(r"\s+")
_FIELDS = string.Formatter()


def clean_text(text: Any) -> str:
    if text is None:
        return ""
    return _SPACES.sub(" ", _CONTROL.sub(" ", str(text))).strip()


def cap(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, at a space when one is in the last fifth."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def format_number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _fill(template: str, fields: Mapping[str, str]) -> str:
    """Fill a template; a template whose fields are all empty renders as ''."""
    names = [name for _, name, _, _ in _FIELDS.parse(template) if name]
    if names and not any(fields.get(n) for n in names):
        return ""
    return template.format_map(_Missing(fields))


class _Missing(dict):
    def __init__(self, fields: Mapping[str, str]):
        super().__init__(fields)

    def __missing__(self, key: str) -> str:
        return ""


def _attribute_name(key: Any) -> str:
    return clean_text(str(key).replace("_", " "))


class TextRenderer:
    def __init__(self, settings: TextSettings):
        self.settings = settings
        # Compared as rendered (cleaned, "_" as " ", any case), so " Gender" or "Zip Code" is excluded too.
        self._excluded = {_attribute_name(a).lower() for a in settings.exclude_user_attributes}

    def item(self, item: Mapping[str, Any]) -> str:
        """An item row (title, description, categories, attributes) as one text."""
        attributes = item.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            attributes = dict(attributes)
        title = clean_text(item.get("title")) or f"Item {clean_text(item.get('item_id'))}".strip()
        fields = {
            "title": title,
            "description": clean_text(item.get("description")),
            "categories": ", ".join(c for c in (clean_text(c) for c in item.get("categories") or []) if c),
            **{f"attr_{k}": clean_text(v) for k, v in attributes.items()},
        }
        parts = (_fill(p, fields) for p in self.settings.item_parts)
        return cap(clean_text(" ".join(p for p in parts if p)), self.settings.max_item_chars)

    def behaviour(self, event_type: str, value: float | None, title: str) -> str:
        """One behaviour, e.g. ``rated 5: Toy Story (1995)``."""
        template = self.settings.behaviour_templates.get(event_type, self.settings.behaviour_default)
        fields = {"event_type": clean_text(event_type), "value": format_number(value), "title": clean_text(title)}
        return cap(clean_text(template.format_map(_Missing(fields))), self.settings.max_behaviour_chars)

    def history(self, behaviours: Sequence[str]) -> str:
        """The newest behaviours first, as many as fit the history cap."""
        out: list[str] = []
        used = 0
        for text in reversed(behaviours):
            if used + len(text) + 2 > self.settings.max_history_chars:
                break
            out.append(text)
            used += len(text) + 2
        return "; ".join(out)

    def profile(self, attributes: Mapping[str, Any] | None) -> str:
        """Profile attributes as text, personal ones excluded; '' when nothing is left."""
        pairs = [
            f"{_attribute_name(k)}: {clean_text(v)}"
            for k, v in sorted((attributes or {}).items())
            if _attribute_name(k).lower() not in self._excluded and clean_text(v)
        ]
        if not pairs:
            return ""
        return cap(clean_text(f"{self.settings.profile_prefix} {', '.join(pairs)}."), self.settings.max_profile_chars)
